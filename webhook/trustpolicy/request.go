package trustpolicy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Request describes the sts:AssumeRoleWithWebIdentity call a pod would make.
type Request struct {
	RoleARN        string // the role to assume; its partition and account locate the OIDC provider
	IssuerURL      string // the cluster's service-account issuer, "https://host/path" (see IssuerPath)
	Namespace      string
	ServiceAccount string
	Audience       string // the token's audience; "" means unknown (aud conditions become unknown)
}

// Subject is the token's sub claim for the request's service account.
func (r Request) Subject() string {
	return SubjectPrefix + r.Namespace + ":" + r.ServiceAccount
}

// Provider is the ARN of the IAM OIDC provider STS uses for the request,
// arn:<role partition>:iam::<role account>:oidc-provider/<issuer host/path>, or "" when
// the role ARN or the issuer is not valid.
func (r Request) Provider() string {
	c, problems := newRequestContext(r)
	if len(problems) > 0 {
		return ""
	}
	return c.provider()
}

// requestContext is a validated Request, in the forms matching needs.
type requestContext struct {
	req      Request
	role     irsa.RoleARN
	issuer   string // host/path: the provider's URL without scheme or trailing slash
	keyScope string // issuer lower-cased, to compare with lower-cased condition keys
	sub      string
}

// provider is the ARN of the IAM OIDC provider STS uses for this request:
// arn:<role partition>:iam::<role account>:oidc-provider/<issuer>.
func (c *requestContext) provider() string {
	return "arn:" + c.role.Partition + ":iam::" + c.role.AccountID + ":oidc-provider/" + c.issuer
}

func newRequestContext(r Request) (requestContext, []string) {
	c := requestContext{req: r}
	var problems []string
	role, err := irsa.ParseRoleARN(r.RoleARN)
	if err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	c.role = role
	issuer, err := IssuerPath(r.IssuerURL)
	if err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	c.issuer = issuer
	if err := checkName("namespace", r.Namespace); err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	if err := checkName("service account name", r.ServiceAccount); err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	if len(problems) > 0 {
		return c, problems
	}
	c.sub = r.Subject()
	c.keyScope = strings.ToLower(issuer)
	return c, nil
}

// IssuerPath checks a service-account issuer and returns the URL of its IAM OIDC provider:
// host and path, without the https:// scheme or a trailing slash, as IAM writes it in
// provider ARNs and condition keys. It is the one check of an issuer, for flags
// (--oidc-issuer-url, --issuer), for the issuer discovered from the API server and for
// Evaluate's request.
//
// An issuer is an https URL (the scheme in any letter case) with a host and no user
// information, query or fragment, as OpenID Connect and IAM require, or the same without
// its scheme (the form IAM shows). Spaces, control and non-ASCII characters, quotes and
// backslashes are refused: such an issuer cannot appear in a provider ARN.
func IssuerPath(issuer string) (string, error) {
	if issuer == "" {
		return "", errors.New("issuer URL is empty")
	}
	rest := issuer
	if len(rest) >= len("https://") && strings.EqualFold(rest[:len("https://")], "https://") {
		rest = rest[len("https://"):]
	} else if strings.Contains(rest, "://") {
		return "", fmt.Errorf("issuer URL %q must use https", issuer)
	}
	rest = strings.TrimRight(rest, "/")
	if rest == "" || rest[0] == '/' {
		return "", fmt.Errorf("issuer URL %q has no host", issuer)
	}
	if i := strings.IndexFunc(rest, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '"' || c == '\\'
	}); i >= 0 {
		return "", fmt.Errorf("issuer URL %q contains %q; an OIDC issuer has no spaces, query or fragment", issuer, rest[i])
	}
	host, _, _ := strings.Cut(rest, "/")
	if strings.Contains(host, "@") {
		return "", fmt.Errorf("issuer URL %q has user information; an OIDC issuer has none", issuer)
	}
	// What is left to refuse is what no URL parser accepts: a bad port, a bad %-escape, a
	// character a host cannot have.
	if _, err := url.Parse("https://" + rest); err != nil {
		return "", fmt.Errorf("issuer URL %q is not a URL: %w", issuer, err)
	}
	return rest, nil
}

func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("%s %q contains %q", what, v, c)
		}
	}
	return nil
}

// keyKind classifies a condition key relative to the request.
type keyKind uint8

const (
	keyOther         keyKind = iota // a global or service key (aws:SourceIp, sts:RoleSessionName, ...)
	keySub                          // <issuer>:sub
	keyAud                          // <issuer>:aud
	keyOwnClaim                     // <issuer>:<another claim>
	keyOtherProvider                // <another provider>:<claim>
	keyWithScheme                   // https://<issuer>:<claim>, which IAM's keys never have
)

// lookup returns what the checker knows about a (lower-cased) condition key. Only this
// issuer's sub, and aud when the request names an audience, are known; every other key may
// or may not be in STS's request context, so its state is unknown.
func (c *requestContext) lookup(key string) (keyKind, keyState, string) {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return keyOther, keyUnknown, ""
	}
	prefix, claim := key[:i], key[i+1:]
	if prefix == c.keyScope {
		switch claim {
		case "sub":
			return keySub, keyPresent, c.sub
		case "aud":
			if c.req.Audience == "" {
				return keyAud, keyUnknown, ""
			}
			return keyAud, keyPresent, c.req.Audience
		}
		return keyOwnClaim, keyUnknown, ""
	}
	if host, ok := strings.CutPrefix(prefix, "https://"); ok && host == c.keyScope {
		return keyWithScheme, keyUnknown, ""
	}
	if strings.ContainsAny(prefix, "./") {
		return keyOtherProvider, keyUnknown, ""
	}
	return keyOther, keyUnknown, ""
}
