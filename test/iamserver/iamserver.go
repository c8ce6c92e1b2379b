// Package iamserver is a local IAM and STS endpoint for tests. It speaks the Query protocol
// the way AWS does on the wire: form-encoded requests, text/xml answers in the 2010-05-08
// (IAM) and 2011-06-15 (STS) namespaces, trust policies percent-encoded per RFC 3986, and the
// services' error envelope, codes and HTTP statuses. One handler serves both services on one
// URL (requests are told apart by their Version), so aws-sdk-go-v2 clients reach it through
// AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL_STS or BaseEndpoint.
//
// IAM: GetRole, and CreateOpenIDConnectProvider, GetOpenIDConnectProvider,
// ListOpenIDConnectProviders and DeleteOpenIDConnectProvider (provider ARN
// arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH, in the account of the caller's access key);
// SimulatePrincipalPolicy for a role, over inline policies set with PutRolePolicy (limits in
// evaluatePermissions).
// IAM requests must be SigV4-signed, but only the shape of the signature is checked, so any
// access key works; faults (errors, latency, a refused connection) can be injected, and calls
// are counted so tests can assert caching.
//
// STS checks what AWS checks:
//   - AssumeRoleWithWebIdentity (unsigned, as SDKs send it) parses the token with go-jose,
//     looks up the IAM OIDC provider of its iss in the role's account (InvalidIdentityToken if
//     none), wants its aud in the provider's client-ID list (InvalidIdentityToken), fetches the
//     issuer's discovery document and JWKS over HTTPS (IDPCommunicationError if unreachable;
//     SetIssuerEndpoint says where, since a test issuer's host does not resolve), verifies the
//     signature (InvalidIdentityToken), exp against the server's clock (ExpiredTokenException)
//     and the role's trust policy with webhook/trustpolicy (AccessDenied unless Trusted). It
//     answers with temporary credentials (ASIA...) for the assumed-role session.
//   - GetCallerIdentity accepts only requests whose SigV4 signature, recomputed with
//     aws-sdk-go-v2's signer over the received request, matches, with credentials this server
//     issued (plus its session token) or a registered long-term key (DefaultAccessKeyID, and
//     AddAccessKey), and answers with the caller's account, ARN and user id.
//
// It is test infrastructure, not linked into the webhook binary. Request bodies are bounded
// (64 KiB), as are the identity provider's answers, the number of OIDC providers per account
// and the number of live sessions; bad input gets an AWS error, never a panic.
package iamserver

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// APIVersion is the only IAM API version IAM (and this server) serves.
const APIVersion = "2010-05-08"

// Namespace is the XML namespace of every IAM response.
const Namespace = "https://iam.amazonaws.com/doc/2010-05-08/"

// Error codes the server can answer with, as IAM and STS spell them on the wire.
const (
	CodeNoSuchEntity               = "NoSuchEntity"               // 404, Sender
	CodeThrottling                 = "Throttling"                 // 400, Sender
	CodeAccessDenied               = "AccessDenied"               // 403, Sender
	CodeServiceFailure             = "ServiceFailure"             // 500, Receiver
	CodeServiceUnavailable         = "ServiceUnavailable"         // 503, Receiver
	CodeInvalidAction              = "InvalidAction"              // 400, Sender
	CodeValidationError            = "ValidationError"            // 400, Sender
	CodeInvalidInput               = "InvalidInput"               // 400, Sender
	CodeEntityAlreadyExists        = "EntityAlreadyExists"        // 409, Sender
	CodeLimitExceeded              = "LimitExceeded"              // 409, Sender
	CodeMissingAuthenticationToken = "MissingAuthenticationToken" // 403, Sender
	CodeInvalidClientTokenID       = "InvalidClientTokenId"       // 403, Sender
	CodeIncompleteSignature        = "IncompleteSignature"        // 400, Sender
	CodeSignatureDoesNotMatch      = "SignatureDoesNotMatch"      // 403, Sender
	CodeExpiredToken               = "ExpiredToken"               // 403, Sender: expired session credentials
	CodeInvalidIdentityToken       = "InvalidIdentityToken"       // 400, Sender
	CodeExpiredTokenException      = "ExpiredTokenException"      // 400, Sender: expired web identity token
	CodeIDPCommunicationError      = "IDPCommunicationError"      // 400, Sender
)

// defaultMaxSessionDuration is what IAM reports for a role created without one (1 hour).
const defaultMaxSessionDuration = 3600

// maxRequestBody bounds the form body; the largest request, AssumeRoleWithWebIdentity,
// carries a token of at most 20,000 characters.
const maxRequestBody = 64 << 10

// principalARN is the caller IAM names in AccessDenied messages, and the identity of the
// long-term access keys.
const principalARN = "arn:aws:sts::123456789012:assumed-role/irsa-webhook/test-session"

// Server is a local IAM and STS endpoint. All methods are safe for concurrent use.
type Server struct {
	handler http.Handler

	mu        sync.Mutex
	srv       *httptest.Server // nil while Down
	stop      chan struct{}    // closed by Down/Close, ends delays
	addr      string           // host:port, kept across Down/Up
	roles     map[string]role  // keyed by lower-case role name: IAM names are case-insensitive
	delay     time.Duration
	fault     string
	failNext  int
	failCode  string
	calls     map[string]int // GetRole calls by RoleName as sent
	total     int
	lastAuthz string

	now       func() time.Time
	keys      map[string]accessKey                // by access key id: long-term and session keys
	sessions  []string                            // session key ids, oldest first (bounded)
	providers map[string]map[string]*oidcProvider // account -> provider URL (host/path) -> provider
	issuers   map[string]IssuerEndpoint           // issuer URL (the iss claim) -> where to fetch its keys

	rolePolicies map[string]map[string]string // lower-case role name -> inline policy name -> JSON
}

type role struct {
	arn, path, name, id string
	policy              string // JSON as given to PutRole
	created             time.Time
}

// New starts a server on 127.0.0.1 with no roles, no OIDC providers and one long-term access
// key, DefaultAccessKeyID / DefaultSecretAccessKey, of account CallerAccount.
func New() *Server {
	s := &Server{
		roles: map[string]role{}, calls: map[string]int{}, stop: make(chan struct{}),
		now: time.Now, keys: map[string]accessKey{}, providers: map[string]map[string]*oidcProvider{},
		issuers: map[string]IssuerEndpoint{},
	}
	s.AddAccessKey(DefaultAccessKeyID, DefaultSecretAccessKey)
	s.handler = http.HandlerFunc(s.serveHTTP)
	s.srv = httptest.NewServer(s.handler)
	s.addr = s.srv.Listener.Addr().String()
	return s
}

// URL is the endpoint's base URL (http://127.0.0.1:PORT); it stays the same across Down/Up.
func (s *Server) URL() string { return "http://" + s.addr }

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	if srv != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	if srv != nil {
		// Close waits for active requests; cut delayed ones short first.
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Down closes the listener and every connection, so new requests are refused, while
// keeping the URL for Up. In-flight requests are aborted (any delay is cut short).
func (s *Server) Down() { s.Close() }

// Up listens again on the same address after Down. It fails if another process took the
// port in the meantime.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", s.addr, err)
	}
	srv := httptest.NewUnstartedServer(s.handler)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	s.srv = srv
	s.stop = make(chan struct{})
	return nil
}

// SetClock replaces the clock STS uses for token expiry, session expiry and the signing
// time check (time.Now by default): tests move it forward instead of waiting.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// PutRole creates or replaces the role named by arn (path included) with the given trust
// policy (plain JSON, stored verbatim and percent-encoded on the way out, as IAM does).
// Roles are keyed by name alone (GetRole names no account), so two accounts cannot hold a
// role of the same name here. It panics on an invalid ARN: that is a bug in the test.
func (s *Server) PutRole(arn, trustPolicyJSON string) {
	a, err := irsa.ParseRoleARN(arn)
	if err != nil {
		panic("iamserver.PutRole: " + err.Error())
	}
	sum := sha256.Sum256([]byte(a.String()))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[strings.ToLower(a.Name)] = role{
		arn: a.String(), path: a.Path, name: a.Name, id: roleID(sum[:]),
		policy: trustPolicyJSON, created: time.Now().UTC().Truncate(time.Second),
	}
}

// DeleteRole removes the role with this name, if any.
func (s *Server) DeleteRole(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.roles, strings.ToLower(name))
}

// SetDelay makes every later request wait d before it is answered (0 clears it). The wait
// ends early if the client goes away.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// FailNext makes the next n well-formed, signed IAM requests fail with code (one of the Code
// constants; an unknown code is answered as a 400 Sender error). STS is never faulted.
func (s *Server) FailNext(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failCode = n, code
}

// SetFault makes every well-formed, signed IAM request fail with code until SetFault("").
// FailNext, while it lasts, takes precedence.
func (s *Server) SetFault(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = code
}

// Calls is how many GetRole requests named roleName (as sent), whatever their outcome.
func (s *Server) Calls(roleName string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[roleName]
}

// TotalCalls is how many requests reached the server, whatever their action or outcome.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// LastAuthorization is the Authorization header of the last request ("" if none yet).
func (s *Server) LastAuthorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuthz
}

// ResetCalls sets all counters to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.total = 0
}

// takeFault returns the injected fault for this IAM request ("" for none).
func (s *Server) takeFault() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.failNext > 0:
		s.failNext--
		return s.failCode
	case s.fault != "":
		return s.fault
	}
	return ""
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.total++
	s.lastAuthz = r.Header.Get("Authorization")
	delay, stop := s.delay, s.stop
	s.mu.Unlock()

	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeError(w, CodeInvalidAction, fmt.Sprintf("Unsupported HTTP method %s.", r.Method))
		return
	}
	var body []byte
	var bodyErr error
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			writeError(w, CodeInvalidAction, fmt.Sprintf("Unsupported Content-Type %q; IAM and STS take application/x-www-form-urlencoded.", ct))
			return
		}
		// Read the body before any delay, so the server notices a client that gives up; keep
		// the bytes, since STS hashes them to verify the signature.
		body, bodyErr = io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	formErr := r.ParseForm()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		}
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(bodyErr, &tooLarge):
		writeError(w, CodeValidationError, fmt.Sprintf("The request body is larger than %d bytes.", maxRequestBody))
		return
	case bodyErr != nil:
		writeError(w, CodeInvalidAction, "Could not read the request: "+bodyErr.Error())
		return
	case formErr != nil:
		writeError(w, CodeInvalidAction, "Could not parse the request: "+formErr.Error())
		return
	}

	action, version := r.Form.Get("Action"), r.Form.Get("Version")
	if version == stsAPIVersion {
		// STS shares the Query protocol; serving it here lets the webhook learn its account,
		// and a pod's SDK exchange its token, at the same endpoint as IAM.
		s.serveSTS(w, r, body, action)
		return
	}
	if msg := checkSigned(r, "iam"); msg != "" {
		code := CodeMissingAuthenticationToken
		if r.Header.Get("Authorization") != "" {
			code = CodeIncompleteSignature
			if strings.HasPrefix(msg, "Credential should be scoped") {
				code = CodeSignatureDoesNotMatch
			}
		}
		writeError(w, code, msg)
		return
	}
	switch action {
	case "GetRole":
		if version == APIVersion {
			s.getRole(w, r.Form.Get("RoleName"))
			return
		}
	case actCreateProvider, actGetProvider, actListProviders, actDeleteProvider:
		if version == APIVersion {
			s.serveOIDCProvider(w, r, action)
			return
		}
	case actSimulatePrincipalPolicy:
		if version == APIVersion {
			if e := s.simulatePrincipalPolicy(w, r.Form); e != nil {
				writeAPIError(w, Namespace, e)
			}
			return
		}
	case "":
		action = "(none)"
	}
	writeError(w, CodeInvalidAction, fmt.Sprintf("Could not find operation %s for version %s", action, version))
}
