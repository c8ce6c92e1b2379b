package iamserver

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// IAM actions on OpenID Connect providers.
const (
	actCreateProvider = "CreateOpenIDConnectProvider"
	actGetProvider    = "GetOpenIDConnectProvider"
	actListProviders  = "ListOpenIDConnectProviders"
	actDeleteProvider = "DeleteOpenIDConnectProvider"
)

// IAM's quotas and bounds for OIDC providers (IAM User Guide, "IAM and AWS STS quotas", and
// the CreateOpenIDConnectProvider reference).
const (
	maxProvidersPerAccount = 100
	maxClientIDs           = 100
	maxThumbprints         = 5
	maxClientIDLen         = 255
	maxProviderURLLen      = 255
	maxTags                = 50
)

// oidcProvider is an IAM OpenID Connect provider.
type oidcProvider struct {
	arn         string
	url         string // host/path, as IAM returns it (no scheme)
	clientIDs   []string
	thumbprints []string
	tags        []xmlTag
	created     time.Time
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

// PutOIDCProvider registers (or replaces) the IAM OIDC provider for issuerURL in account, with
// these client IDs (audiences), as CreateOpenIDConnectProvider would, and returns its ARN. It
// panics on an issuer URL IAM would refuse: that is a bug in the test.
func (s *Server) PutOIDCProvider(account, issuerURL string, clientIDs ...string) string {
	u, err := providerURL(issuerURL)
	if err != nil {
		panic("iamserver.PutOIDCProvider: " + err.Error())
	}
	p := &oidcProvider{arn: providerARN(account, u), url: u, clientIDs: slices.Clone(clientIDs), created: time.Now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.providers[account] == nil {
		s.providers[account] = map[string]*oidcProvider{}
	}
	s.providers[account][u] = p
	return p.arn
}

// DeleteOIDCProvider removes account's provider for issuerURL, if any.
func (s *Server) DeleteOIDCProvider(account, issuerURL string) {
	u, err := providerURL(issuerURL)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.providers[account], u)
}

// provider returns a copy of account's provider for the issuer URL (host/path form).
func (s *Server) provider(account, u string) (oidcProvider, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.providers[account][u]
	if !ok {
		return oidcProvider{}, false
	}
	c := *p
	c.clientIDs = slices.Clone(p.clientIDs)
	return c, true
}

// providerURL turns an issuer URL into the provider's URL as IAM stores it: host and path
// without https:// or a trailing slash.
func providerURL(issuer string) (string, error) {
	if len(issuer) > maxProviderURLLen+len("https://") {
		return "", fmt.Errorf("URL is longer than %d characters", maxProviderURLLen)
	}
	u, err := url.Parse(issuer)
	switch {
	case err != nil:
		return "", fmt.Errorf("invalid URL %q: %w", issuer, err)
	case u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("URL %q must be https://host[/path] without credentials, query or fragment", issuer)
	}
	return strings.TrimRight(strings.TrimPrefix(issuer, "https://"), "/"), nil
}

func providerARN(account, u string) string {
	return "arn:aws:iam::" + account + ":oidc-provider/" + u
}

// callerAccount is the account of the (unverified) access key in an IAM request's
// Authorization header: a registered or issued key's account, else CallerAccount.
func (s *Server) callerAccount(r *http.Request) string {
	id := ""
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		id = a.accessKeyID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k.account
	}
	return CallerAccount
}

func (s *Server) serveOIDCProvider(w http.ResponseWriter, r *http.Request, action string) {
	if code := s.takeFault(); code != "" {
		writeError(w, code, "")
		return
	}
	account := s.callerAccount(r)
	var e *apiError
	switch action {
	case actCreateProvider:
		e = s.createProvider(w, r.Form, account)
	case actGetProvider:
		e = s.getProvider(w, r.Form.Get("OpenIDConnectProviderArn"), account)
	case actListProviders:
		s.listProviders(w, account)
	case actDeleteProvider:
		e = s.deleteProvider(w, r.Form.Get("OpenIDConnectProviderArn"), account)
	}
	if e != nil {
		writeAPIError(w, Namespace, e)
	}
}

// members returns the Query protocol list prefix.member.1, .2, ... up to the first gap,
// stopping after max+1 entries so that an over-long list is detected without reading it all.
func members(form url.Values, prefix string, max int) []string {
	var out []string
	for i := 1; i <= max+1; i++ {
		v, ok := form[prefix+".member."+strconv.Itoa(i)]
		if !ok {
			break
		}
		out = append(out, v[0])
	}
	return out
}

func (s *Server) createProvider(w http.ResponseWriter, form url.Values, account string) *apiError {
	rawURL := form.Get("Url")
	if rawURL == "" {
		return validationErrors([]string{nullProblem("url")})
	}
	u, err := providerURL(rawURL)
	if err != nil {
		return codeError(CodeInvalidInput, "Invalid Url: "+err.Error())
	}
	clientIDs := members(form, "ClientIDList", maxClientIDs)
	thumbprints := members(form, "ThumbprintList", maxThumbprints)
	var problems []string
	if len(clientIDs) > maxClientIDs {
		problems = append(problems, fmt.Sprintf("Value at 'clientIDList' failed to satisfy constraint: Member must have length less than or equal to %d", maxClientIDs))
	}
	for _, c := range clientIDs {
		if c == "" || len(c) > maxClientIDLen {
			problems = append(problems, fmt.Sprintf("Value at 'clientIDList' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to %d, Member must have length greater than or equal to 1]", maxClientIDLen))
			break
		}
	}
	if len(thumbprints) > maxThumbprints {
		problems = append(problems, fmt.Sprintf("Value at 'thumbprintList' failed to satisfy constraint: Member must have length less than or equal to %d", maxThumbprints))
	}
	for _, t := range thumbprints {
		if len(t) != 40 || strings.Trim(strings.ToLower(t), "0123456789abcdef") != "" {
			problems = append(problems, "Value at 'thumbprintList' failed to satisfy constraint: Member must satisfy constraint: [Member must have length 40, Member must be hexadecimal]")
			break
		}
	}
	var tags []xmlTag
	for i := 1; i <= maxTags+1; i++ {
		k, ok := form["Tags.member."+strconv.Itoa(i)+".Key"]
		if !ok {
			break
		}
		tags = append(tags, xmlTag{Key: k[0], Value: form.Get("Tags.member." + strconv.Itoa(i) + ".Value")})
	}
	if len(tags) > maxTags {
		problems = append(problems, fmt.Sprintf("Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to %d", maxTags))
	}
	if len(problems) > 0 {
		return validationErrors(problems)
	}

	p := &oidcProvider{arn: providerARN(account, u), url: u, clientIDs: dedupe(clientIDs), thumbprints: thumbprints, tags: tags, created: time.Now().UTC()}
	s.mu.Lock()
	byURL := s.providers[account]
	if byURL == nil {
		byURL = map[string]*oidcProvider{}
		s.providers[account] = byURL
	}
	_, exists := byURL[u]
	full := len(byURL) >= maxProvidersPerAccount
	if !exists && !full {
		byURL[u] = p
	}
	s.mu.Unlock()
	switch {
	case exists:
		return codeError(CodeEntityAlreadyExists, fmt.Sprintf("Provider with url https://%s already exists.", u))
	case full:
		return codeError(CodeLimitExceeded, fmt.Sprintf("Cannot exceed quota for OpenIdConnectProvidersPerAccount: %d", maxProvidersPerAccount))
	}
	id := newRequestID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName  xml.Name         `xml:"CreateOpenIDConnectProviderResponse"`
		Xmlns    string           `xml:"xmlns,attr"`
		ARN      string           `xml:"CreateOpenIDConnectProviderResult>OpenIDConnectProviderArn"`
		Tags     []xmlTag         `xml:"CreateOpenIDConnectProviderResult>Tags>member"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}{Xmlns: Namespace, ARN: p.arn, Tags: tags, Metadata: responseMetadata{id}})
	return nil
}

func dedupe(list []string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// lookupProvider finds the caller account's provider named by arn.
func (s *Server) lookupProvider(arn, account string) (oidcProvider, *apiError) {
	if arn == "" {
		return oidcProvider{}, validationErrors([]string{nullProblem("openIDConnectProviderArn")})
	}
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	acct, u, ok2 := strings.Cut(rest, ":oidc-provider/")
	if !ok || !ok2 || len(acct) != 12 || u == "" || len(arn) > 2048 {
		return oidcProvider{}, codeError(CodeInvalidInput, fmt.Sprintf("ARN %s is not valid.", arn))
	}
	p, found := s.provider(acct, u)
	if !found || acct != account {
		return oidcProvider{}, codeError(CodeNoSuchEntity, fmt.Sprintf("OpenIDConnect Provider not found for arn %s", arn))
	}
	return p, nil
}

func (s *Server) getProvider(w http.ResponseWriter, arn, account string) *apiError {
	p, e := s.lookupProvider(arn, account)
	if e != nil {
		return e
	}
	id := newRequestID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName     xml.Name         `xml:"GetOpenIDConnectProviderResponse"`
		Xmlns       string           `xml:"xmlns,attr"`
		ClientIDs   []string         `xml:"GetOpenIDConnectProviderResult>ClientIDList>member"`
		CreateDate  string           `xml:"GetOpenIDConnectProviderResult>CreateDate"`
		Tags        []xmlTag         `xml:"GetOpenIDConnectProviderResult>Tags>member"`
		Thumbprints []string         `xml:"GetOpenIDConnectProviderResult>ThumbprintList>member"`
		URL         string           `xml:"GetOpenIDConnectProviderResult>Url"`
		Metadata    responseMetadata `xml:"ResponseMetadata"`
	}{
		Xmlns: Namespace, ClientIDs: p.clientIDs, CreateDate: p.created.Format("2006-01-02T15:04:05.000Z"),
		Tags: p.tags, Thumbprints: p.thumbprints, URL: p.url, Metadata: responseMetadata{id},
	})
	return nil
}

func (s *Server) listProviders(w http.ResponseWriter, account string) {
	type entry struct {
		Arn string `xml:"Arn"`
	}
	var list []entry
	s.mu.Lock()
	for _, p := range s.providers[account] {
		list = append(list, entry{p.arn})
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Arn < list[j].Arn })
	id := newRequestID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName  xml.Name         `xml:"ListOpenIDConnectProvidersResponse"`
		Xmlns    string           `xml:"xmlns,attr"`
		List     []entry          `xml:"ListOpenIDConnectProvidersResult>OpenIDConnectProviderList>member"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}{Xmlns: Namespace, List: list, Metadata: responseMetadata{id}})
}

func (s *Server) deleteProvider(w http.ResponseWriter, arn, account string) *apiError {
	p, e := s.lookupProvider(arn, account)
	if e != nil {
		return e
	}
	s.mu.Lock()
	delete(s.providers[account], p.url)
	s.mu.Unlock()
	id := newRequestID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName  xml.Name         `xml:"DeleteOpenIDConnectProviderResponse"`
		Xmlns    string           `xml:"xmlns,attr"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}{Xmlns: Namespace, Metadata: responseMetadata{id}})
	return nil
}
