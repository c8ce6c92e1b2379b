package iamserver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// stsAPIVersion is STS's Query API version.
const stsAPIVersion = "2011-06-15"

// CallerAccount is the account of the long-term access keys (DefaultAccessKeyID and those
// added with AddAccessKey), which GetCallerIdentity reports for them.
const CallerAccount = "123456789012"

// The long-term access key every Server accepts, as the webhook's own credentials in tests.
const (
	DefaultAccessKeyID     = "AKIDEXAMPLE"
	DefaultSecretAccessKey = "secret"
)

const (
	// maxSessions bounds the temporary credentials kept; the oldest are forgotten first.
	maxSessions = 4096
	// Bounds of AssumeRoleWithWebIdentity's parameters (STS API reference).
	minDuration, maxDuration = 900, 43200
	minTokenLen, maxTokenLen = 4, 20000
	minSessionLen            = 2
	maxSessionLen            = 64
	minRoleARNLen            = 20
	maxRoleARNLen            = 2048
	msgNotAuthorized         = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
	// clockSkew is the allowance for a token's nbf and iat (not for exp, checked exactly).
	clockSkew = 5 * time.Minute
)

// tokenAlgorithms are the JWS algorithms STS accepts for web identity tokens (RSA and ECDSA).
var tokenAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512}

// accessKey is a credential the server knows: a long-term key (no session token, no expiry)
// or one it issued for an assumed-role session.
type accessKey struct {
	secret, sessionToken string
	expires              time.Time // zero for long-term keys
	account, arn, userID string
}

// AddAccessKey registers a long-term access key of CallerAccount, whose GetCallerIdentity
// answer is the webhook's test identity. IAM requests accept any key; STS verifies the
// signature with the secret registered here.
func (s *Server) AddAccessKey(accessKeyID, secretAccessKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[accessKeyID] = accessKey{secret: secretAccessKey, account: CallerAccount, arn: principalARN, userID: "AROAEXAMPLEID:test-session"}
}

func (s *Server) serveSTS(w http.ResponseWriter, r *http.Request, body []byte, action string) {
	var e *apiError
	switch action {
	case "AssumeRoleWithWebIdentity":
		e = s.assumeRoleWithWebIdentity(w, r)
	case "GetCallerIdentity":
		e = s.getCallerIdentity(w, r, body)
	default:
		if action == "" {
			action = "(none)"
		}
		e = codeError(CodeInvalidAction, fmt.Sprintf("Could not find operation %s for version %s", action, stsAPIVersion))
	}
	if e != nil {
		writeAPIError(w, STSNamespace, e)
	}
}

func (s *Server) getCallerIdentity(w http.ResponseWriter, r *http.Request, body []byte) *apiError {
	key, e := s.authenticate(r, body, "sts", s.clock())
	if e != nil {
		return e
	}
	id := newRequestID()
	writeXML(w, http.StatusOK, id, struct {
		XMLName  xml.Name         `xml:"GetCallerIdentityResponse"`
		Xmlns    string           `xml:"xmlns,attr"`
		Arn      string           `xml:"GetCallerIdentityResult>Arn"`
		UserID   string           `xml:"GetCallerIdentityResult>UserId"`
		Account  string           `xml:"GetCallerIdentityResult>Account"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}{Xmlns: STSNamespace, Arn: key.arn, UserID: key.userID, Account: key.account, Metadata: responseMetadata{id}})
	return nil
}

// webIdentityRequest is AssumeRoleWithWebIdentity's validated parameters.
type webIdentityRequest struct {
	role     irsa.RoleARN
	session  string
	token    string
	duration int
}

func parseWebIdentityRequest(form url.Values) (webIdentityRequest, *apiError) {
	var req webIdentityRequest
	var problems []string
	roleARN, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	req.token = form.Get("WebIdentityToken")
	switch {
	case roleARN == "":
		problems = append(problems, nullProblem("roleArn"))
	case len(roleARN) < minRoleARNLen || len(roleARN) > maxRoleARNLen:
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleArn' failed to satisfy constraint: Member must have length between %d and %d", roleARN, minRoleARNLen, maxRoleARNLen))
	}
	switch {
	case session == "":
		problems = append(problems, nullProblem("roleSessionName"))
	case len(session) < minSessionLen || len(session) > maxSessionLen || !validRoleName(session):
		problems = append(problems, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between %d and %d", session, minSessionLen, maxSessionLen))
	}
	switch {
	case req.token == "":
		problems = append(problems, nullProblem("webIdentityToken"))
	case len(req.token) < minTokenLen || len(req.token) > maxTokenLen:
		problems = append(problems, fmt.Sprintf("Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between %d and %d", minTokenLen, maxTokenLen))
	}
	req.duration = defaultMaxSessionDuration
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < minDuration || n > maxDuration {
			problems = append(problems, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between %d and %d", d, minDuration, maxDuration))
		}
		req.duration = n
	}
	if len(problems) > 0 {
		return req, validationErrors(problems)
	}
	a, err := irsa.ParseRoleARN(roleARN)
	if err != nil {
		return req, codeError(CodeValidationError, "Request ARN is invalid")
	}
	req.role, req.session = a, session
	return req, nil
}

func (s *Server) assumeRoleWithWebIdentity(w http.ResponseWriter, r *http.Request) *apiError {
	req, e := parseWebIdentityRequest(r.Form)
	if e != nil {
		return e
	}
	tok, err := jwt.ParseSigned(req.token, tokenAlgorithms)
	if err != nil {
		return codeError(CodeInvalidIdentityToken, "Couldn't parse the web identity token: it is not a JWS-signed JWT with an RSA or ECDSA algorithm")
	}
	var unverified jwt.Claims // aud may be a string or a list
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" {
		return codeError(CodeInvalidIdentityToken, "Couldn't parse the web identity token's claims (iss is required)")
	}
	iss := unverified.Issuer
	u, err := providerURL(iss)
	if err != nil {
		return codeError(CodeInvalidIdentityToken, fmt.Sprintf("No OpenIDConnect provider found in your account for %s", iss))
	}
	provider, found := s.provider(req.role.AccountID, u)
	if !found {
		return codeError(CodeInvalidIdentityToken, fmt.Sprintf("No OpenIDConnect provider found in your account for %s", iss))
	}
	audience := ""
	for _, c := range provider.clientIDs {
		if unverified.Audience.Contains(c) {
			audience = c
			break
		}
	}
	if audience == "" {
		return codeError(CodeInvalidIdentityToken, "Incorrect token audience")
	}

	keys, e := s.keySet(r.Context(), iss)
	if e != nil {
		return e
	}
	var claims jwt.Claims
	if err := tok.Claims(keys, &claims); err != nil {
		if errors.Is(err, jose.ErrJWKSKidNotFound) {
			return noKey("no key with the token's kid %q in the identity provider's JWKS", tok.Headers[0].KeyID)
		}
		return codeError(CodeInvalidIdentityToken, "The web identity token's signature could not be verified with the identity provider's keys")
	}
	now := s.clock()
	switch {
	case claims.Expiry == nil:
		return codeError(CodeInvalidIdentityToken, "The web identity token has no expiration (exp) claim")
	case !now.Before(claims.Expiry.Time()):
		return codeError(CodeExpiredTokenException, fmt.Sprintf("Token expired: current date/time %d must be before the expiration date/time%d", now.Unix(), claims.Expiry.Time().Unix()))
	}
	// exp is checked exactly above; nbf and iat get the usual allowance for clock skew.
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: iss, Time: now}, clockSkew); err != nil {
		return codeError(CodeInvalidIdentityToken, "The web identity token is not valid: "+err.Error())
	}

	rl, ok := s.trustedRole(req.role, iss, claims.Subject, audience)
	if !ok {
		return codeError(CodeAccessDenied, msgNotAuthorized)
	}
	if req.duration > defaultMaxSessionDuration {
		return codeError(CodeValidationError, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
	}
	key := s.issueSession(req, rl, now)
	id := newRequestID()
	writeXML(w, http.StatusOK, id, assumeRoleWithWebIdentityResponse{
		Xmlns:                       STSNamespace,
		AssumedRoleArn:              key.arn,
		AssumedRoleID:               key.userID,
		Audience:                    audience,
		AccessKeyID:                 key.id,
		Expiration:                  key.expires.UTC().Format(time.RFC3339),
		SecretAccessKey:             key.secret,
		SessionToken:                key.sessionToken,
		Provider:                    provider.arn,
		SubjectFromWebIdentityToken: claims.Subject,
		Metadata:                    responseMetadata{id},
	})
	return nil
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName                     xml.Name         `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns                       string           `xml:"xmlns,attr"`
	AssumedRoleArn              string           `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>Arn"`
	AssumedRoleID               string           `xml:"AssumeRoleWithWebIdentityResult>AssumedRoleUser>AssumedRoleId"`
	Audience                    string           `xml:"AssumeRoleWithWebIdentityResult>Audience"`
	AccessKeyID                 string           `xml:"AssumeRoleWithWebIdentityResult>Credentials>AccessKeyId"`
	Expiration                  string           `xml:"AssumeRoleWithWebIdentityResult>Credentials>Expiration"`
	SecretAccessKey             string           `xml:"AssumeRoleWithWebIdentityResult>Credentials>SecretAccessKey"`
	SessionToken                string           `xml:"AssumeRoleWithWebIdentityResult>Credentials>SessionToken"`
	Provider                    string           `xml:"AssumeRoleWithWebIdentityResult>Provider"`
	SubjectFromWebIdentityToken string           `xml:"AssumeRoleWithWebIdentityResult>SubjectFromWebIdentityToken"`
	Metadata                    responseMetadata `xml:"ResponseMetadata"`
}

// trustedRole returns the role named by a if it exists and its trust policy lets the token
// (issuer, sub, aud) assume it, as decided by the project's evaluator. Only Trusted allows:
// the evaluator says Undetermined for keys it cannot know (aws:SourceIp, ...), and a sub that
// is not a service account's cannot be evaluated at all; STS would know, this server refuses.
func (s *Server) trustedRole(a irsa.RoleARN, iss, sub, aud string) (role, bool) {
	s.mu.Lock()
	rl, found := s.roles[strings.ToLower(a.Name)]
	s.mu.Unlock()
	if !found || !strings.EqualFold(rl.arn, a.String()) {
		return role{}, false
	}
	rest, ok := strings.CutPrefix(sub, trustpolicy.SubjectPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return role{}, false
	}
	p, err := trustpolicy.Parse(rl.policy)
	if err != nil {
		return role{}, false
	}
	v := trustpolicy.Evaluate(p, trustpolicy.Request{RoleARN: rl.arn, IssuerURL: iss, Namespace: ns, ServiceAccount: sa, Audience: aud})
	return rl, v.Result == trustpolicy.Trusted
}

// issuedKey is a session key with its id.
type issuedKey struct {
	id string
	accessKey
}

// issueSession creates temporary credentials for the assumed-role session and remembers
// them (at most maxSessions; the oldest are forgotten first).
func (s *Server) issueSession(req webIdentityRequest, rl role, now time.Time) issuedKey {
	a, _ := irsa.ParseRoleARN(rl.arn)
	k := issuedKey{
		id: "ASIA" + randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
		accessKey: accessKey{
			secret:       randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
			sessionToken: randomToken(),
			expires:      now.Add(time.Duration(req.duration) * time.Second).Truncate(time.Second),
			account:      a.AccountID,
			arn:          "arn:" + a.Partition + ":sts::" + a.AccountID + ":assumed-role/" + a.Name + "/" + req.session,
			userID:       rl.id + ":" + req.session,
		},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.sessions) >= maxSessions {
		delete(s.keys, s.sessions[0])
		s.sessions = s.sessions[1:]
	}
	s.keys[k.id] = k.accessKey
	s.sessions = append(s.sessions, k.id)
	return k
}

// randomString returns n characters drawn from alphabet (at most 256 characters long).
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// randomToken is an opaque session token, as long as AWS's short ones.
func randomToken() string {
	b := make([]byte, 320)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
