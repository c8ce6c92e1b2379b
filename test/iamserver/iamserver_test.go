package iamserver_test

import (
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

const (
	arn        = "arn:aws:iam::123456789012:role/team/app"
	signedAuth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123456789abcdef"
)

// request is a raw Query-protocol call.
type request struct {
	method string
	form   url.Values
	authz  string // Authorization header; "-" for none
	ctype  string // Content-Type of a POST; "" means form-encoded
}

func getRole(name string) url.Values {
	return url.Values{"Action": {"GetRole"}, "Version": {iamserver.APIVersion}, "RoleName": {name}}
}

func do(t *testing.T, srv *iamserver.Server, r request) (int, http.Header, string) {
	t.Helper()
	var req *http.Request
	var err error
	switch r.method {
	case http.MethodGet:
		req, err = http.NewRequest(http.MethodGet, srv.URL()+"/?"+r.form.Encode(), nil)
	default:
		req, err = http.NewRequest(r.method, srv.URL()+"/", strings.NewReader(r.form.Encode()))
		ct := r.ctype
		if ct == "" {
			ct = "application/x-www-form-urlencoded; charset=utf-8"
		}
		req.Header.Set("Content-Type", ct)
	}
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Date", "20260102T030405Z")
	switch r.authz {
	case "":
		req.Header.Set("Authorization", signedAuth)
	case "-":
	default:
		req.Header.Set("Authorization", r.authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, srv.URL(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

type wireRole struct {
	Path, RoleName, RoleId, Arn, CreateDate, AssumeRolePolicyDocument string
	MaxSessionDuration                                                int
}

type getRoleResponse struct {
	XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ GetRoleResponse"`
	Role      wireRole `xml:"GetRoleResult>Role"`
	RequestID string   `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"https://iam.amazonaws.com/doc/2010-05-08/ ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func TestGetRoleWire(t *testing.T) {
	policy := `{"Sid":"é a%2Fb+c~"}`
	wantEncoded := "%7B%22Sid%22%3A%22%C3%A9%20a%252Fb%2Bc~%22%7D"
	tests := []struct {
		name string
		req  request
	}{
		{name: "POST form", req: request{method: http.MethodPost, form: getRole("app")}},
		{name: "GET query", req: request{method: http.MethodGet, form: getRole("app")}},
		{name: "role names are case-insensitive", req: request{method: http.MethodPost, form: getRole("APP")}},
	}
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(arn, policy)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := do(t, srv, tt.req)
			if status != http.StatusOK {
				t.Fatalf("status %d, body %s", status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "text/xml" {
				t.Errorf("Content-Type %q, want text/xml", ct)
			}
			var got getRoleResponse
			if err := xml.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			r := got.Role
			if r.Arn != arn || r.Path != "/team/" || r.RoleName != "app" {
				t.Errorf("role Arn/Path/RoleName = %q %q %q", r.Arn, r.Path, r.RoleName)
			}
			if r.AssumeRolePolicyDocument != wantEncoded {
				t.Errorf("AssumeRolePolicyDocument = %q, want %q", r.AssumeRolePolicyDocument, wantEncoded)
			}
			if len(r.RoleId) != 21 || !strings.HasPrefix(r.RoleId, "AROA") {
				t.Errorf("RoleId %q is not AROA + 17 characters", r.RoleId)
			}
			if _, err := time.Parse(time.RFC3339, r.CreateDate); err != nil {
				t.Errorf("CreateDate %q: %v", r.CreateDate, err)
			}
			if r.MaxSessionDuration != 3600 {
				t.Errorf("MaxSessionDuration %d, want 3600", r.MaxSessionDuration)
			}
			if len(got.RequestID) != 36 || hdr.Get("x-amzn-RequestId") != got.RequestID {
				t.Errorf("RequestId %q, header %q", got.RequestID, hdr.Get("x-amzn-RequestId"))
			}
		})
	}
}

func TestErrorsWire(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*iamserver.Server)
		req        request
		wantStatus int
		wantType   string
		wantCode   string
		wantMsg    string
		wantCalls  int // GetRole calls counted for "app"
	}{
		{
			name: "no such entity", req: request{form: getRole("app")},
			wantStatus: 404, wantType: "Sender", wantCode: "NoSuchEntity", wantMsg: "The role with name app cannot be found.", wantCalls: 1,
		},
		{
			name: "throttling", setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeThrottling) }, req: request{form: getRole("app")},
			wantStatus: 400, wantType: "Sender", wantCode: "Throttling", wantMsg: "Rate exceeded", wantCalls: 1,
		},
		{
			name: "access denied", setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeAccessDenied) }, req: request{form: getRole("app")},
			wantStatus: 403, wantType: "Sender", wantCode: "AccessDenied", wantMsg: "iam:GetRole on resource: role app", wantCalls: 1,
		},
		{
			name: "service failure", setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeServiceFailure) }, req: request{form: getRole("app")},
			wantStatus: 500, wantType: "Receiver", wantCode: "ServiceFailure", wantCalls: 1,
		},
		{
			name: "unknown action", req: request{form: url.Values{"Action": {"ListRoles"}, "Version": {iamserver.APIVersion}}},
			wantStatus: 400, wantType: "Sender", wantCode: "InvalidAction", wantMsg: "Could not find operation ListRoles for version 2010-05-08",
		},
		{
			name: "missing action", req: request{form: url.Values{"RoleName": {"app"}}},
			wantStatus: 400, wantType: "Sender", wantCode: "InvalidAction",
		},
		{
			name: "wrong version", req: request{form: url.Values{"Action": {"GetRole"}, "Version": {"2011-01-01"}, "RoleName": {"app"}}},
			wantStatus: 400, wantType: "Sender", wantCode: "InvalidAction",
		},
		{
			name: "missing role name", req: request{form: url.Values{"Action": {"GetRole"}, "Version": {iamserver.APIVersion}}},
			wantStatus: 400, wantType: "Sender", wantCode: "ValidationError", wantMsg: "'roleName'",
		},
		{
			name: "invalid role name", req: request{form: getRole("a/b")},
			wantStatus: 400, wantType: "Sender", wantCode: "ValidationError",
		},
		{
			name: "not form-encoded", req: request{form: getRole("app"), ctype: "application/json"},
			wantStatus: 400, wantType: "Sender", wantCode: "InvalidAction",
		},
		{
			name: "unsigned", req: request{form: getRole("app"), authz: "-"},
			wantStatus: 403, wantType: "Sender", wantCode: "MissingAuthenticationToken",
		},
		{
			name: "not SigV4", req: request{form: getRole("app"), authz: "AWS AKIDEXAMPLE:sig"},
			wantStatus: 400, wantType: "Sender", wantCode: "IncompleteSignature",
		},
		{
			name: "scoped to another service", req: request{form: getRole("app"), authz: strings.Replace(signedAuth, "/iam/", "/sts/", 1)},
			wantStatus: 403, wantType: "Sender", wantCode: "SignatureDoesNotMatch", wantMsg: "'iam'",
		},
		{
			name: "fail next overrides an existing role", setup: func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.FailNext(1, iamserver.CodeNoSuchEntity) },
			req: request{form: getRole("app")}, wantStatus: 404, wantType: "Sender", wantCode: "NoSuchEntity", wantCalls: 1,
		},
		{
			name: "unknown injected code", setup: func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault("Teapot") },
			req: request{form: getRole("app")}, wantStatus: 400, wantType: "Sender", wantCode: "Teapot", wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := iamserver.New()
			defer srv.Close()
			if tt.setup != nil {
				tt.setup(srv)
			}
			if tt.req.method == "" {
				tt.req.method = http.MethodPost
			}
			status, hdr, body := do(t, srv, tt.req)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			if ct := hdr.Get("Content-Type"); ct != "text/xml" {
				t.Errorf("Content-Type %q, want text/xml", ct)
			}
			var got errorResponse
			if err := xml.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("unmarshal %s: %v", body, err)
			}
			if got.Type != tt.wantType || got.Code != tt.wantCode {
				t.Errorf("Type/Code = %q/%q, want %q/%q", got.Type, got.Code, tt.wantType, tt.wantCode)
			}
			if got.Message == "" || !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("Message %q, want it to contain %q", got.Message, tt.wantMsg)
			}
			if len(got.RequestID) != 36 {
				t.Errorf("RequestId %q is not a UUID", got.RequestID)
			}
			if c := srv.Calls("app"); c != tt.wantCalls {
				t.Errorf("Calls(app) = %d, want %d", c, tt.wantCalls)
			}
			if c := srv.TotalCalls(); c != 1 {
				t.Errorf("TotalCalls = %d, want 1", c)
			}
		})
	}
}

func TestFaultLifetimes(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(arn, "{}")
	status := func() int {
		s, _, _ := do(t, srv, request{method: http.MethodPost, form: getRole("app")})
		return s
	}
	srv.FailNext(2, iamserver.CodeThrottling)
	for i, want := range []int{400, 400, 200} {
		if got := status(); got != want {
			t.Errorf("FailNext(2): request %d status %d, want %d", i, got, want)
		}
	}
	srv.SetFault(iamserver.CodeServiceFailure)
	for i := range 3 {
		if got := status(); got != 500 {
			t.Errorf("SetFault: request %d status %d, want 500", i, got)
		}
	}
	srv.SetFault("")
	if got := status(); got != 200 {
		t.Errorf("after SetFault(\"\"): status %d, want 200", got)
	}
	srv.DeleteRole("APP")
	if got := status(); got != 404 {
		t.Errorf("after DeleteRole: status %d, want 404", got)
	}
	if got := srv.Calls("app"); got != 8 {
		t.Errorf("Calls(app) = %d, want 8", got)
	}
	srv.ResetCalls()
	if got := srv.TotalCalls(); got != 0 {
		t.Errorf("TotalCalls after ResetCalls = %d", got)
	}
}

func TestDelayDownUp(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(arn, "{}")
	url := srv.URL()

	srv.SetDelay(150 * time.Millisecond)
	start := time.Now()
	do(t, srv, request{method: http.MethodPost, form: getRole("app")})
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("delayed request answered after %s", elapsed)
	}

	// Down cuts a delayed request short and refuses new connections.
	srv.SetDelay(time.Hour)
	done := make(chan error, 1)
	go func() {
		_, err := http.Post(url, "application/x-www-form-urlencoded", strings.NewReader(getRole("app").Encode()))
		done <- err
	}()
	waitFor(t, func() bool { return srv.TotalCalls() == 2 })
	start = time.Now()
	srv.Down()
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Down took %s with a delayed request in flight", elapsed)
	}
	t.Logf("the delayed request after Down: %v", <-done) // cut short: the time above is the check
	_, err := http.Post(url, "application/x-www-form-urlencoded", strings.NewReader(getRole("app").Encode()))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("POST while down: %v, want connection refused", err)
	}

	if err := srv.Up(); err != nil {
		t.Skipf("Up: %v", err)
	}
	srv.SetDelay(0)
	if srv.URL() != url {
		t.Errorf("URL changed across Down/Up: %s -> %s", url, srv.URL())
	}
	if status, _, body := do(t, srv, request{method: http.MethodPost, form: getRole("app")}); status != 200 {
		t.Errorf("after Up: status %d %s", status, body)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				srv.PutRole(arn, "{}")
			case 1:
				srv.SetFault(iamserver.CodeThrottling)
				srv.SetFault("")
			case 2:
				srv.FailNext(1, iamserver.CodeServiceFailure)
			}
			do(t, srv, request{method: http.MethodPost, form: getRole("app")})
			_ = srv.Calls("app")
		})
	}
	wg.Wait()
	if got := srv.TotalCalls(); got != 20 {
		t.Errorf("TotalCalls = %d, want 20", got)
	}
}

func TestEncodePolicy(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "unreserved kept", in: "AZaz09-_.~", want: "AZaz09-_.~"},
		{name: "space and newline", in: " \n", want: "%20%0A"},
		{name: "reserved", in: `{"a":"b/c*+,="}`, want: "%7B%22a%22%3A%22b%2Fc%2A%2B%2C%3D%22%7D"},
		{name: "percent is encoded again", in: "%2F", want: "%252F"},
		{name: "UTF-8 bytes", in: "é", want: "%C3%A9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := iamserver.EncodePolicy(tt.in); got != tt.want {
				t.Errorf("EncodePolicy(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
