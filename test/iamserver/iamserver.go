// Package iamserver is a local IAM endpoint for tests. It speaks IAM's Query protocol the
// way AWS does on the wire, enough for GetRole: form-encoded requests signed with SigV4,
// text/xml answers in the 2010-05-08 namespace, trust policies percent-encoded per
// RFC 3986, and IAM's error envelope and HTTP statuses. Faults (errors, latency, a
// refused connection) can be injected, and calls are counted so tests can assert caching.
//
// It is test infrastructure: it never checks signatures (only that requests are signed),
// and it is not linked into the webhook binary.
package iamserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// APIVersion is the only IAM API version IAM (and this server) serves.
const APIVersion = "2010-05-08"

// Namespace is the XML namespace of every IAM response.
const Namespace = "https://iam.amazonaws.com/doc/2010-05-08/"

// Error codes the server can answer with, as IAM spells them on the wire.
const (
	CodeNoSuchEntity               = "NoSuchEntity"               // 404, Sender
	CodeThrottling                 = "Throttling"                 // 400, Sender
	CodeAccessDenied               = "AccessDenied"               // 403, Sender
	CodeServiceFailure             = "ServiceFailure"             // 500, Receiver
	CodeServiceUnavailable         = "ServiceUnavailable"         // 503, Receiver
	CodeInvalidAction              = "InvalidAction"              // 400, Sender
	CodeValidationError            = "ValidationError"            // 400, Sender
	CodeMissingAuthenticationToken = "MissingAuthenticationToken" // 403, Sender
	CodeInvalidClientTokenID       = "InvalidClientTokenId"       // 403, Sender
)

// defaultMaxSessionDuration is what IAM reports for a role created without one (1 hour).
const defaultMaxSessionDuration = 3600

// maxRequestBody bounds the form body; GetRole requests are well under 1 KiB.
const maxRequestBody = 64 << 10

// principalARN is the caller IAM names in AccessDenied messages.
const principalARN = "arn:aws:sts::123456789012:assumed-role/irsa-webhook/test-session"

// Server is a local IAM endpoint. All methods are safe for concurrent use.
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
}

type role struct {
	arn, path, name, id string
	policy              string // JSON as given to PutRole
	created             time.Time
}

// New starts a server on 127.0.0.1 with no roles.
func New() *Server {
	s := &Server{roles: map[string]role{}, calls: map[string]int{}, stop: make(chan struct{})}
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

// PutRole creates or replaces the role named by arn (path included) with the given trust
// policy (plain JSON, stored verbatim and percent-encoded on the way out, as IAM does).
// It panics on an invalid ARN: that is a bug in the test.
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

// FailNext makes the next n well-formed, signed requests fail with code (one of the Code
// constants; an unknown code is answered as a 400 Sender error).
func (s *Server) FailNext(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failCode = n, code
}

// SetFault makes every well-formed, signed request fail with code until SetFault("").
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
	if r.Method == http.MethodPost {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			writeError(w, CodeInvalidAction, fmt.Sprintf("Unsupported Content-Type %q; IAM takes application/x-www-form-urlencoded.", ct))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	}
	// Read the body before any delay, so the server notices a client that gives up.
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
	if formErr != nil {
		writeError(w, CodeInvalidAction, "Could not parse the request: "+formErr.Error())
		return
	}
	service := "iam"
	if r.Form.Get("Action") == "GetCallerIdentity" {
		service = "sts"
	}
	if msg := checkSigned(r, service); msg != "" {
		code := CodeMissingAuthenticationToken
		if r.Header.Get("Authorization") != "" {
			code = "IncompleteSignature"
		}
		writeErrorStatus(w, http.StatusForbidden, "Sender", code, msg)
		return
	}

	action, version := r.Form.Get("Action"), r.Form.Get("Version")
	if action == "GetCallerIdentity" && version == stsAPIVersion {
		// STS shares the Query protocol; answering its one call here lets the webhook
		// learn its account (whose roles GetRole can see) from the same endpoint.
		writeCallerIdentity(w)
		return
	}
	if action != "GetRole" || version != APIVersion {
		if action == "" {
			action = "(none)"
		}
		writeError(w, CodeInvalidAction, fmt.Sprintf("Could not find operation %s for version %s", action, version))
		return
	}
	name := r.Form.Get("RoleName")

	s.mu.Lock()
	s.calls[name]++
	code := ""
	switch {
	case s.failNext > 0:
		s.failNext--
		code = s.failCode
	case s.fault != "":
		code = s.fault
	}
	rl, found := s.roles[strings.ToLower(name)]
	s.mu.Unlock()

	switch {
	case name == "":
		writeError(w, CodeValidationError, "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null")
	case !validRoleName(name):
		writeError(w, CodeValidationError, fmt.Sprintf("1 validation error detected: Value '%s' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name))
	case code == CodeNoSuchEntity || (code == "" && !found):
		writeError(w, CodeNoSuchEntity, fmt.Sprintf("The role with name %s cannot be found.", name))
	case code == CodeAccessDenied:
		writeError(w, CodeAccessDenied, fmt.Sprintf(
			"User: %s is not authorized to perform: iam:GetRole on resource: role %s because no identity-based policy allows the iam:GetRole action",
			principalARN, name))
	case code != "":
		writeError(w, code, "")
	default:
		writeGetRole(w, rl)
	}
}

// checkSigned reports why a request is not SigV4-signed ("" if it is). It checks the
// shape of the Authorization header (or presigned query) and the credential scope's
// service; it does not verify the signature.
func checkSigned(r *http.Request, service string) string {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if r.URL.Query().Get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" && r.URL.Query().Get("X-Amz-Signature") != "" {
			return ""
		}
		return "Request is missing Authentication Token"
	}
	rest, ok := strings.CutPrefix(authz, "AWS4-HMAC-SHA256 ")
	if !ok {
		return "Authorization header requires the AWS4-HMAC-SHA256 algorithm."
	}
	fields := map[string]string{}
	for _, f := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return fmt.Sprintf("Authorization header requires '%s' parameter.", k)
		}
	}
	// Credential=AKID/20060102/us-east-1/iam/aws4_request
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[3] != service || scope[4] != "aws4_request" {
		return fmt.Sprintf("Credential should be scoped to correct service: '%s'. (got %q)", service, fields["Credential"])
	}
	if r.Header.Get("X-Amz-Date") == "" && r.Header.Get("Date") == "" {
		return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	return ""
}

// validRoleName is IAM's pattern for GetRole's RoleName: [\w+=,.@-]+, at most 64.
func validRoleName(name string) bool {
	if len(name) > 64 {
		return false
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// Wire shapes of IAM's responses.
type getRoleResponse struct {
	XMLName   xml.Name `xml:"GetRoleResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Role      xmlRole  `xml:"GetRoleResult>Role"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

type xmlRole struct {
	Path                     string `xml:"Path"`
	AssumeRolePolicyDocument string `xml:"AssumeRolePolicyDocument"`
	MaxSessionDuration       int    `xml:"MaxSessionDuration"`
	RoleID                   string `xml:"RoleId"`
	RoleLastUsed             string `xml:"RoleLastUsed"`
	RoleName                 string `xml:"RoleName"`
	Arn                      string `xml:"Arn"`
	CreateDate               string `xml:"CreateDate"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func writeGetRole(w http.ResponseWriter, rl role) {
	writeXML(w, http.StatusOK, getRoleResponse{
		Xmlns: Namespace,
		Role: xmlRole{
			Path:                     rl.path,
			AssumeRolePolicyDocument: EncodePolicy(rl.policy),
			MaxSessionDuration:       defaultMaxSessionDuration,
			RoleID:                   rl.id,
			RoleName:                 rl.name,
			Arn:                      rl.arn,
			CreateDate:               rl.created.Format(time.RFC3339),
		},
	})
}

// errorShape is IAM's HTTP status, fault type and default message per error code.
var errorShape = map[string]struct {
	status int
	typ    string
	msg    string
}{
	CodeNoSuchEntity:               {http.StatusNotFound, "Sender", "The role cannot be found."},
	CodeThrottling:                 {http.StatusBadRequest, "Sender", "Rate exceeded"},
	CodeAccessDenied:               {http.StatusForbidden, "Sender", "Access denied"},
	CodeServiceFailure:             {http.StatusInternalServerError, "Receiver", "The request processing has failed because of an unknown error, exception or failure."},
	CodeServiceUnavailable:         {http.StatusServiceUnavailable, "Receiver", "Service Unavailable"},
	CodeInvalidAction:              {http.StatusBadRequest, "Sender", "The action or operation requested is invalid."},
	CodeValidationError:            {http.StatusBadRequest, "Sender", "Validation error"},
	CodeMissingAuthenticationToken: {http.StatusForbidden, "Sender", "Request is missing Authentication Token"},
	CodeInvalidClientTokenID:       {http.StatusForbidden, "Sender", "The security token included in the request is invalid."},
}

func writeError(w http.ResponseWriter, code, msg string) {
	shape, ok := errorShape[code]
	if !ok {
		shape.status, shape.typ, shape.msg = http.StatusBadRequest, "Sender", "Injected fault "+code
	}
	if msg == "" {
		msg = shape.msg
	}
	writeErrorStatus(w, shape.status, shape.typ, code, msg)
}

func writeErrorStatus(w http.ResponseWriter, status int, typ, code, msg string) {
	writeXML(w, status, errorResponse{Xmlns: Namespace, Type: typ, Code: code, Message: msg})
}

// writeXML answers like IAM: text/xml, an x-amzn-RequestId header matching the body's
// RequestId, and an indented document.
func writeXML(w http.ResponseWriter, status int, v any) {
	id := newRequestID()
	switch r := v.(type) {
	case getRoleResponse:
		r.RequestID = id
		v = r
	case errorResponse:
		r.RequestID = id
		v = r
	}
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "marshal response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", id)
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// EncodePolicy percent-encodes a policy document the way IAM returns it: RFC 3986, every
// byte except the unreserved A-Z a-z 0-9 - _ . ~ as %XX (UTF-8 bytes, spaces as %20).
// url.QueryEscape already leaves exactly the unreserved set alone and escapes '+' itself,
// so only its space-as-'+' needs undoing.
func EncodePolicy(doc string) string {
	return strings.ReplaceAll(url.QueryEscape(doc), "+", "%20")
}

// roleID renders IAM's role id shape ("AROA" + 17 upper-case letters and digits) from a
// digest, so a role's id is stable for its ARN.
func roleID(sum []byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b strings.Builder
	b.WriteString("AROA")
	for i := 0; i < 17; i++ {
		b.WriteByte(alphabet[sum[i]%32])
	}
	return b.String()
}

// newRequestID returns a random RFC 4122 version 4 UUID, IAM's request id format. Written
// here because no module the project depends on directly provides UUIDs.
func newRequestID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// stsAPIVersion is STS's Query API version; the server answers GetCallerIdentity only.
const stsAPIVersion = "2011-06-15"

// CallerAccount is the account GetCallerIdentity reports: the account of principalARN.
const CallerAccount = "123456789012"

func writeCallerIdentity(w http.ResponseWriter) {
	id := newRequestID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", id)
	fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>%s</Arn>
    <UserId>AROAEXAMPLEID:test-session</UserId>
    <Account>%s</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>%s</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
`, principalARN, CallerAccount, id)
}
