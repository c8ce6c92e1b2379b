package iamserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	idpIssuer = "https://oidc.idp.test/id/UNIT"
	unitRole  = "arn:aws:iam::123456789012:role/S3WriterRole"
	unitSub   = "system:serviceaccount:production:s3-writer"
	unitAud   = "sts.amazonaws.com"
)

// testIDP is an OIDC identity provider with its own signing key, served over TLS like a
// real issuer (discovery document and JWKS); it can be made to fail.
type testIDP struct {
	srv     *httptest.Server
	key     *rsa.PrivateKey
	kid     string
	status  atomic.Int32 // non-zero: answer every request with this status
	jwks    atomic.Value // string: the JWKS document served
	issuer  atomic.Value // string: the discovery document's issuer
	fetches atomic.Int32 // requests served
}

func newTestIDP(t *testing.T) *testIDP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testIDP{key: key, kid: "unit-key"}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: p.kid, Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	p.jwks.Store(string(jwks))
	p.issuer.Store(idpIssuer)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if s := p.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.issuer.Load().(string), "jwks_uri": "https://oidc.idp.test/openid/v1/jwks"})
		case "/openid/v1/jwks":
			_, _ = w.Write([]byte(p.jwks.Load().(string)))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIDP) endpoint() iamserver.IssuerEndpoint {
	return iamserver.IssuerEndpoint{
		DiscoveryURL: p.srv.URL + "/.well-known/openid-configuration",
		JWKSURL:      p.srv.URL + "/openid/v1/jwks",
		Client:       p.srv.Client(),
	}
}

// claims is a token's claims; zero fields are left out.
type claims struct {
	Issuer   string   `json:"iss,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	Audience []string `json:"aud,omitempty"`
	Expiry   int64    `json:"exp,omitempty"`
	IssuedAt int64    `json:"iat,omitempty"`
}

func validClaims() claims {
	now := time.Now()
	return claims{Issuer: idpIssuer, Subject: unitSub, Audience: []string{unitAud}, Expiry: now.Add(time.Hour).Unix(), IssuedAt: now.Unix()}
}

// sign signs c with key (RS256 or ES256 by key type) under kid, with go-jose.
func sign(t *testing.T, key any, kid string, c claims) string {
	t.Helper()
	alg := jose.RS256
	if _, ok := key.(*ecdsa.PrivateKey); ok {
		alg = jose.ES256
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper changes one character in the middle of the token's signature.
func tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + (len(tok)-strings.LastIndexByte(tok, '.'))/2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func minimalPolicy(t *testing.T, role, issuer, ns, sa string) string {
	t.Helper()
	doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: role, IssuerURL: issuer, Namespace: ns, ServiceAccount: sa, Audience: unitAud})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func newSTS(srv *iamserver.Server, creds aws.CredentialsProvider) *sts.Client {
	return sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), Credentials: creds, RetryMaxAttempts: 1})
}

// apiError returns the AWS error code and HTTP status the SDK surfaced.
func apiError(err error) (string, int) {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	code, status := "", 0
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func TestAssumeRoleWithWebIdentity(t *testing.T) {
	idp := newTestIDP(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*claims)) claims { c := validClaims(); f(&c); return c }
	good := sign(t, idp.key, idp.kid, validClaims())

	tests := []struct {
		name       string
		setup      func(*testing.T, *iamserver.Server)
		role       string
		token      string
		duration   int32
		wantCode   string
		wantStatus int
		wantMsg    string
	}{
		{name: "trusted token", token: good},
		{name: "audience among several", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Audience = []string{"other", unitAud} }))},
		{name: "provider not registered in the role's account", setup: func(t *testing.T, s *iamserver.Server) { s.DeleteOIDCProvider(iamserver.CallerAccount, idpIssuer) },
			token: good, wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "No OpenIDConnect provider found in your account for " + idpIssuer},
		{name: "provider registered in another account only", role: "arn:aws:iam::210987654321:role/S3WriterRole",
			setup: func(t *testing.T, s *iamserver.Server) {
				s.PutRole("arn:aws:iam::210987654321:role/S3WriterRole", minimalPolicy(t, "arn:aws:iam::210987654321:role/S3WriterRole", idpIssuer, "production", "s3-writer"))
			},
			token: good, wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "No OpenIDConnect provider found"},
		{name: "audience not in the client-ID list", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Audience = []string{"https://kubernetes.default.svc"} })),
			wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "Incorrect token audience"},
		{name: "expired", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Expiry = time.Now().Add(-time.Minute).Unix() })),
			wantCode: "ExpiredTokenException", wantStatus: 400, wantMsg: "Token expired: current date/time"},
		{name: "no exp", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Expiry = 0 })), wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "issued in the future", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.IssuedAt = time.Now().Add(time.Hour).Unix() })), wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "tampered signature", token: tamper(good), wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "signature"},
		{name: "signed by another key under the same kid", token: sign(t, otherKey, idp.kid, validClaims()), wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "signature"},
		{name: "unknown kid", token: sign(t, idp.key, "other-kid", validClaims()), wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "verification key"},
		{name: "ECDSA key not in the JWKS", token: sign(t, ecKey, idp.kid, validClaims()), wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "unsigned token (alg none)", token: "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL29pZGMuaWRwLnRlc3QvaWQvVU5JVCJ9.", wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "not a JWT", token: "not-a-token", wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "sub of another namespace", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Subject = "system:serviceaccount:staging:s3-writer" })),
			wantCode: "AccessDenied", wantStatus: 403, wantMsg: "Not authorized to perform sts:AssumeRoleWithWebIdentity"},
		{name: "sub that is no service account", token: sign(t, idp.key, idp.kid, with(func(c *claims) { c.Subject = "user" })), wantCode: "AccessDenied", wantStatus: 403},
		{name: "role does not exist", role: "arn:aws:iam::123456789012:role/Missing", token: good, wantCode: "AccessDenied", wantStatus: 403},
		{name: "role ARN with another path", role: "arn:aws:iam::123456789012:role/team/S3WriterRole", token: good, wantCode: "AccessDenied", wantStatus: 403},
		{name: "identity provider unreachable", setup: func(t *testing.T, s *iamserver.Server) {
			s.SetIssuerEndpoint(idpIssuer, iamserver.IssuerEndpoint{DiscoveryURL: "https://127.0.0.1:1/.well-known/openid-configuration"})
		}, token: good, wantCode: "IDPCommunicationError", wantStatus: 400},
		{name: "identity provider answers 500", setup: func(t *testing.T, s *iamserver.Server) {
			idp.status.Store(500)
			t.Cleanup(func() { idp.status.Store(0) })
		}, token: good, wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "Couldn't retrieve verification key"},
		{name: "discovery document of another issuer", setup: func(t *testing.T, s *iamserver.Server) {
			idp.issuer.Store("https://evil.test")
			t.Cleanup(func() { idp.issuer.Store(idpIssuer) })
		}, token: good, wantCode: "InvalidIdentityToken", wantStatus: 400},
		{name: "JWKS larger than the bound", setup: func(t *testing.T, s *iamserver.Server) {
			old := idp.jwks.Load()
			idp.jwks.Store(`{"keys":[],"pad":"` + strings.Repeat("x", 300<<10) + `"}`)
			t.Cleanup(func() { idp.jwks.Store(old) })
		}, token: good, wantCode: "InvalidIdentityToken", wantStatus: 400, wantMsg: "larger than"},
		{name: "duration above the role's maximum", token: good, duration: 7200, wantCode: "ValidationError", wantStatus: 400, wantMsg: "MaxSessionDuration"},
		{name: "duration below the minimum", token: good, duration: 60, wantCode: "ValidationError", wantStatus: 400, wantMsg: "durationSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := iamserver.New()
			defer srv.Close()
			srv.PutRole(unitRole, minimalPolicy(t, unitRole, idpIssuer, "production", "s3-writer"))
			providerARN := srv.PutOIDCProvider(iamserver.CallerAccount, idpIssuer, unitAud)
			srv.SetIssuerEndpoint(idpIssuer, idp.endpoint())
			if tt.setup != nil {
				tt.setup(t, srv)
			}
			role := unitRole
			if tt.role != "" {
				role = tt.role
			}
			in := &sts.AssumeRoleWithWebIdentityInput{RoleArn: aws.String(role), RoleSessionName: aws.String("app-session"), WebIdentityToken: aws.String(tt.token)}
			if tt.duration != 0 {
				in.DurationSeconds = aws.Int32(tt.duration)
			}
			out, err := newSTS(srv, nil).AssumeRoleWithWebIdentity(t.Context(), in)
			if tt.wantCode != "" {
				code, status := apiError(err)
				if code != tt.wantCode || status != tt.wantStatus || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("err = %v (code %q, status %d), want %s (%d) containing %q", err, code, status, tt.wantCode, tt.wantStatus, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("AssumeRoleWithWebIdentity: %v", err)
			}
			c, u := out.Credentials, out.AssumedRoleUser
			if id := aws.ToString(c.AccessKeyId); len(id) != 20 || !strings.HasPrefix(id, "ASIA") {
				t.Errorf("AccessKeyId %q, want ASIA + 16 characters", id)
			}
			if aws.ToString(c.SecretAccessKey) == "" || aws.ToString(c.SessionToken) == "" {
				t.Error("secret access key or session token is empty")
			}
			if d := time.Until(aws.ToTime(c.Expiration)); d < 59*time.Minute || d > time.Hour {
				t.Errorf("Expiration in %v, want 1h", d)
			}
			wantARN := "arn:aws:sts::123456789012:assumed-role/S3WriterRole/app-session"
			if aws.ToString(u.Arn) != wantARN || !strings.HasPrefix(aws.ToString(u.AssumedRoleId), "AROA") || !strings.HasSuffix(aws.ToString(u.AssumedRoleId), ":app-session") {
				t.Errorf("AssumedRoleUser = %s %s, want %s AROA...:app-session", aws.ToString(u.Arn), aws.ToString(u.AssumedRoleId), wantARN)
			}
			if aws.ToString(out.SubjectFromWebIdentityToken) != unitSub || aws.ToString(out.Audience) != unitAud || aws.ToString(out.Provider) != providerARN {
				t.Errorf("Subject/Audience/Provider = %q %q %q", aws.ToString(out.SubjectFromWebIdentityToken), aws.ToString(out.Audience), aws.ToString(out.Provider))
			}

			// The issued credentials sign GetCallerIdentity.
			creds := credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
			who, err := newSTS(srv, creds).GetCallerIdentity(t.Context(), &sts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatalf("GetCallerIdentity with the issued credentials: %v", err)
			}
			if aws.ToString(who.Arn) != wantARN || aws.ToString(who.UserId) != aws.ToString(u.AssumedRoleId) || aws.ToString(who.Account) != "123456789012" {
				t.Errorf("GetCallerIdentity = %s %s %s", aws.ToString(who.Arn), aws.ToString(who.UserId), aws.ToString(who.Account))
			}
		})
	}
}

func TestAssumeRoleWithWebIdentityValidation(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	form := url.Values{"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"}}
	resp, err := http.PostForm(srv.URL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Xmlns   string `xml:"xmlns,attr"`
		Type    string `xml:"Error>Type"`
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	if err := decodeXML(resp, &got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || got.Code != "ValidationError" || got.Type != "Sender" || got.Xmlns != iamserver.STSNamespace {
		t.Errorf("status %d, %+v; want 400 Sender ValidationError in the STS namespace", resp.StatusCode, got)
	}
	for _, want := range []string{"3 validation errors detected", "'roleArn'", "'roleSessionName'", "'webIdentityToken'"} {
		if !strings.Contains(got.Message, want) {
			t.Errorf("message %q lacks %q", got.Message, want)
		}
	}
}
