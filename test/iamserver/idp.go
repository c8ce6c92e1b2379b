package iamserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// idpTimeout bounds the discovery and JWKS fetches together: AWS STS gives an identity
	// provider about 5 seconds.
	idpTimeout = 5 * time.Second
	// maxDiscoveryBytes and maxJWKSBytes bound what is read from an identity provider.
	maxDiscoveryBytes = 64 << 10
	maxJWKSBytes      = 256 << 10
	// msgNoVerificationKey is AWS's InvalidIdentityToken message when the identity provider
	// answers, but not with usable keys.
	msgNoVerificationKey = "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements"
)

// IssuerEndpoint says where STS fetches an issuer's OIDC discovery document and keys. AWS
// fetches IssuerURL/.well-known/openid-configuration and then its jwks_uri from the public
// internet; a test cluster's issuer (https://oidc.example.test/...) does not resolve, and
// kube-apiserver serves both documents on its own address with its own CA.
type IssuerEndpoint struct {
	// DiscoveryURL is the discovery document's URL; empty means
	// IssuerURL + "/.well-known/openid-configuration". The document's issuer must still equal
	// the token's iss.
	DiscoveryURL string
	// JWKSURL, if set, replaces the discovery document's jwks_uri (kube-apiserver derives that
	// from the issuer's host, which does not resolve either).
	JWKSURL string
	// Client makes both requests, e.g. with the apiserver's CA in its TLS configuration; nil
	// means a client with the system roots. Requests are anonymous, as AWS's are.
	Client *http.Client
}

// APIServerEndpoint is the IssuerEndpoint of a kube-apiserver that serves its issuer's
// discovery document and JWKS itself (/.well-known/openid-configuration, /openid/v1/jwks) at
// host (https://HOST:PORT), with a serving certificate from the PEM CA bundle caPEM. The
// apiserver answers anonymous clients only once the system:service-account-issuer-discovery
// ClusterRole is bound to system:unauthenticated, as a public issuer needs.
func APIServerEndpoint(host string, caPEM []byte) (IssuerEndpoint, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return IssuerEndpoint{}, fmt.Errorf("issuer endpoint %s: no PEM certificate in the CA bundle", host)
	}
	host = strings.TrimRight(host, "/")
	return IssuerEndpoint{
		DiscoveryURL: host + "/.well-known/openid-configuration",
		JWKSURL:      host + "/openid/v1/jwks",
		Client: &http.Client{Timeout: idpTimeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

// SetIssuerEndpoint tells STS where to fetch the keys of tokens whose iss is issuerURL.
func (s *Server) SetIssuerEndpoint(issuerURL string, e IssuerEndpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuers[strings.TrimRight(issuerURL, "/")] = e
}

// defaultIDPClient fetches from issuers without an IssuerEndpoint.
var defaultIDPClient = &http.Client{Timeout: idpTimeout}

// keySet fetches issuer's discovery document and its JWKS. Errors are AWS's answers:
// IDPCommunicationError when the identity provider cannot be reached, InvalidIdentityToken
// when it answers with something other than a usable key set.
func (s *Server) keySet(ctx context.Context, issuer string) (*jose.JSONWebKeySet, *apiError) {
	s.mu.Lock()
	ep, ok := s.issuers[strings.TrimRight(issuer, "/")]
	s.mu.Unlock()
	if !ok {
		ep = IssuerEndpoint{}
	}
	if ep.DiscoveryURL == "" {
		ep.DiscoveryURL = strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration"
	}
	if ep.Client == nil {
		ep.Client = defaultIDPClient
	}
	ctx, cancel := context.WithTimeout(ctx, idpTimeout)
	defer cancel()

	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if e := fetchJSON(ctx, ep.Client, ep.DiscoveryURL, maxDiscoveryBytes, &doc); e != nil {
		return nil, e
	}
	if doc.Issuer != issuer {
		return nil, noKey("the discovery document at %s is for issuer %q", ep.DiscoveryURL, doc.Issuer)
	}
	jwksURL := ep.JWKSURL
	if jwksURL == "" {
		if u, err := url.Parse(doc.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, noKey("the discovery document's jwks_uri %q is not an https URL", doc.JWKSURI)
		}
		jwksURL = doc.JWKSURI
	}
	var keys jose.JSONWebKeySet
	if e := fetchJSON(ctx, ep.Client, jwksURL, maxJWKSBytes, &keys); e != nil {
		return nil, e
	}
	if len(keys.Keys) == 0 {
		return nil, noKey("the JWKS at %s holds no keys", jwksURL)
	}
	return &keys, nil
}

// fetchJSON GETs u and decodes at most limit bytes of JSON into v.
func fetchJSON(ctx context.Context, c *http.Client, u string, limit int64, v any) *apiError {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return noKey("invalid URL %q", u)
	}
	resp, err := c.Do(req)
	if err != nil {
		return codeError(CodeIDPCommunicationError, fmt.Sprintf("%s (GET %s: %v)", msgIDPUnreachable, u, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return noKey("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil: // cut off or timed out mid-answer
		return codeError(CodeIDPCommunicationError, fmt.Sprintf("%s (GET %s: %v)", msgIDPUnreachable, u, err))
	case int64(len(body)) > limit:
		return noKey("the document at %s is larger than %d bytes", u, limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return noKey("the document at %s: %v", u, err)
	}
	return nil
}

// noKey is AWS's InvalidIdentityToken answer when the identity provider answered without
// usable keys, followed by what went wrong (AWS does not say; a test's reader wants to know).
func noKey(format string, args ...any) *apiError {
	return codeError(CodeInvalidIdentityToken, msgNoVerificationKey+" ("+fmt.Sprintf(format, args...)+")")
}
