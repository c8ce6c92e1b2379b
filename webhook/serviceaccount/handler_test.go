package serviceaccount_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	issuer   = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
	goodRole = "arn:aws:iam::123456789012:role/S3WriterRole"
)

// policyFor is the trust policy the walkthrough writes in step 3, for ns/name.
func policyFor(t testing.TB, ns, name string) string {
	t.Helper()
	doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: goodRole, IssuerURL: issuer, Namespace: ns, ServiceAccount: name, Audience: "sts.amazonaws.com"})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// newSource is the real IAM source, through the real SDK, against the local IAM endpoint.
func newSource(t testing.TB, srv *iamserver.Server) *awsiam.Source {
	t.Helper()
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		t.Setenv(k, "")
		_ = os.Unsetenv(k)
	}
	cfg, err := awsiam.LoadConfig(context.Background(), "us-east-1",
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		config.WithBaseEndpoint(srv.URL()), config.WithSharedConfigFiles(nil), config.WithSharedCredentialsFiles(nil))
	if err != nil {
		t.Fatal(err)
	}
	account, err := awsiam.CallerAccount(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := awsiam.New(context.Background(), awsiam.Options{Client: awsiam.NewIAMClient(cfg), AccountID: account, CallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type event struct{ eventType, reason, note string }

type recorder struct {
	mu       sync.Mutex
	events   []event
	recorded []serviceaccount.Event
}

// Record is the handler's EventSink: it keeps what the handler hands over.
func (r *recorder) Record(e serviceaccount.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{e.Type, e.Reason, e.Note})
	r.recorded = append(r.recorded, e)
}

func saRequest(op admissionv1.Operation, ns, name string, ann map[string]string, old map[string]string, dryRun bool) *admission.Request[corev1.ServiceAccount] {
	obj := func(a map[string]string) string {
		if a == nil && op == admissionv1.Update {
			return "null"
		}
		b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": name, "namespace": ns, "uid": "uid-" + name, "annotations": a}})
		return string(b)
	}
	oldObj := "null"
	if old != nil {
		oldObj = obj(old)
	}
	body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ServiceAccount"},`+
		`"resource":{"group":"","version":"v1","resource":"serviceaccounts"},"namespace":%q,"name":%q,"operation":%q,"dryRun":%v,"object":%s,"oldObject":%s}}`,
		ns, name, op, dryRun, obj(ann), oldObj)
	rv, err := admission.DecodeReview[corev1.ServiceAccount]([]byte(body))
	if err != nil {
		panic(err)
	}
	return rv.Request
}

// undecodable is a request whose ServiceAccount does not decode (an annotation that is a
// number): the API server never sends one, a direct POST can.
func undecodable(ns string) *admission.Request[corev1.ServiceAccount] {
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"ServiceAccount"},` +
		`"resource":{"group":"","version":"v1","resource":"serviceaccounts"},"namespace":"` + ns + `","name":"x","operation":"CREATE",` +
		`"object":{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"x","annotations":{"eks.amazonaws.com/role-arn":7}}}}}`
	rv, err := admission.DecodeReview[corev1.ServiceAccount]([]byte(body))
	if err != nil || rv.Request.ObjectError == nil {
		panic(fmt.Sprintf("want a request with an object error, got %v", err))
	}
	return rv.Request
}

func role(arn string) map[string]string { return map[string]string{"eks.amazonaws.com/role-arn": arn} }

// mappedTo is a mapping (the reference's ConfigMap) of every ServiceAccount to arn; "" maps none.
func mappedTo(arn string) func(ns, name string) (map[string]string, string, bool) {
	return func(string, string) (map[string]string, string, bool) {
		if arn == "" {
			return nil, "", false
		}
		return role(arn), "kube-system/pod-identity-webhook", true
	}
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name        string
		mode        serviceaccount.Mode
		failClosed  bool
		setup       func(*iamserver.Server)
		req         *admission.Request[corev1.ServiceAccount]
		issuer      string
		allowed     bool
		wantWarning string // substring; "" = no warning
		wantEvent   string // reason; "" = no event
		wantVerdict string // metric label; "" = no check counted
		mapped      func(ns, name string) (map[string]string, string, bool)
	}{
		{name: "trusted", mode: serviceaccount.Warn, req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false),
			allowed: true, wantVerdict: "trusted"},
		{name: "role with surrounding whitespace, as the pod path reads it", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "production", "s3-writer", role(" "+goodRole+"\n"), nil, false),
			allowed: true, wantVerdict: "trusted"},
		{name: "no role annotation", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "production", "s3-writer", nil, nil, false), allowed: true},
		{name: "wrong namespace, warn", mode: serviceaccount.Warn, req: saRequest(admissionv1.Create, "staging", "s3-writer", role(goodRole), nil, false),
			allowed: true, wantWarning: `its trust policy does not accept sub "system:serviceaccount:staging:s3-writer"`, wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "wrong namespace, enforce", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "staging", "s3-writer", role(goodRole), nil, false),
			allowed: false, wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "dry run: no event", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "staging", "s3-writer", role(goodRole), nil, true),
			allowed: false, wantVerdict: "not_trusted"},
		{name: "role does not exist", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "production", "s3-writer", role("arn:aws:iam::123456789012:role/Nope"), nil, false),
			allowed: false, wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "role in another account: unverified, allowed", mode: serviceaccount.Enforce, req: saRequest(admissionv1.Create, "production", "s3-writer", role("arn:aws:iam::210987654321:role/S3WriterRole"), nil, false),
			allowed: true, wantWarning: "not verified", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "IAM throttling: allowed with a warning", mode: serviceaccount.Enforce, setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeThrottling) },
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: true, wantWarning: "throttled", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "IAM throttling, fail closed", mode: serviceaccount.Enforce, failClosed: true, setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeThrottling) },
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: false, wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "IAM access denied", mode: serviceaccount.Enforce, setup: func(s *iamserver.Server) { s.SetFault(iamserver.CodeAccessDenied) },
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: true, wantWarning: "not verified: access denied", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "IAM down", mode: serviceaccount.Enforce, setup: func(s *iamserver.Server) { s.Down() },
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: true, wantWarning: "admitted unverified", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "IAM slower than the deadline", mode: serviceaccount.Enforce, setup: func(s *iamserver.Server) { s.SetDelay(5 * time.Second) },
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: true, wantWarning: "not verified", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "unknown issuer", mode: serviceaccount.Enforce, issuer: "-", req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false),
			allowed: true, wantWarning: "issuer is not known yet", wantEvent: serviceaccount.ReasonUnverified, wantVerdict: "undetermined"},
		{name: "invalid role ARN, warn", mode: serviceaccount.Warn, req: saRequest(admissionv1.Create, "production", "s3-writer", role("arn:aws:iam::123456789012:role/x\ny"), nil, false),
			allowed: true, wantWarning: "control or non-ASCII", wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "update without a role change is not checked", mode: serviceaccount.Enforce,
			req: saRequest(admissionv1.Update, "staging", "s3-writer", role(goodRole), role(goodRole), false), allowed: true},
		{name: "update changing the role is checked", mode: serviceaccount.Enforce,
			req: saRequest(admissionv1.Update, "staging", "s3-writer", role(goodRole), role("arn:aws:iam::123456789012:role/Old"), false), allowed: false, wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "excluded namespace: not checked, no event", mode: serviceaccount.Enforce, failClosed: true,
			req: saRequest(admissionv1.Create, "kube-system", "coredns", role("arn:aws:iam::123456789012:role/attacker text"), nil, false), allowed: true},
		{name: "undecodable, warn: allowed with a warning", mode: serviceaccount.Warn, failClosed: true, req: undecodable("production"),
			allowed: true, wantWarning: "cannot decode"},
		{name: "undecodable, enforce: allowed with a warning", mode: serviceaccount.Enforce, req: undecodable("production"),
			allowed: true, wantWarning: "cannot decode"},
		{name: "undecodable, enforce fail closed: denied", mode: serviceaccount.Enforce, failClosed: true, req: undecodable("production"),
			allowed: false},
		{name: "undecodable in an excluded namespace, fail closed: allowed", mode: serviceaccount.Enforce, failClosed: true, req: undecodable("kube-system"),
			allowed: true},
		{name: "mode off", mode: serviceaccount.Off, req: saRequest(admissionv1.Create, "staging", "s3-writer", role(goodRole), nil, false), allowed: true},
		{name: "mapped at creation: warned", mode: serviceaccount.Warn, mapped: mappedTo(goodRole), req: saRequest(admissionv1.Create, "staging", "s3-writer", nil, nil, false),
			allowed: true, wantWarning: `mapped by the webhook's ConfigMap: role ` + goodRole + ` does not trust`, wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "mapped at creation, enforce: warned, not denied (the mapping is the admin's)", mode: serviceaccount.Enforce, failClosed: true, mapped: mappedTo(goodRole),
			req: saRequest(admissionv1.Create, "staging", "s3-writer", nil, nil, false), allowed: true, wantWarning: "mapped by the webhook's ConfigMap", wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
		{name: "mapped and trusted", mode: serviceaccount.Warn, mapped: mappedTo(goodRole), req: saRequest(admissionv1.Create, "production", "s3-writer", nil, nil, false),
			allowed: true, wantVerdict: "trusted"},
		{name: "not mapped", mode: serviceaccount.Warn, mapped: mappedTo(""), req: saRequest(admissionv1.Create, "staging", "s3-writer", nil, nil, false), allowed: true},
		{name: "mapped, its own annotation wins", mode: serviceaccount.Warn, mapped: mappedTo("arn:aws:iam::123456789012:role/Nope"),
			req: saRequest(admissionv1.Create, "production", "s3-writer", role(goodRole), nil, false), allowed: true, wantVerdict: "trusted"},
		{name: "mapped, update of other fields: not checked", mode: serviceaccount.Warn, mapped: mappedTo(goodRole),
			req: saRequest(admissionv1.Update, "staging", "s3-writer", map[string]string{"a": "b"}, map[string]string{}, false), allowed: true},
		{name: "mapped, update removing its own role: the mapping is checked", mode: serviceaccount.Warn, mapped: mappedTo(goodRole),
			req: saRequest(admissionv1.Update, "staging", "s3-writer", map[string]string{}, role(goodRole), false), allowed: true, wantWarning: "mapped by the webhook's ConfigMap", wantEvent: serviceaccount.ReasonMismatch, wantVerdict: "not_trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := iamserver.New()
			defer srv.Close()
			srv.PutRole(goodRole, policyFor(t, "production", "s3-writer"))
			src := newSource(t, srv)
			if tc.setup != nil {
				tc.setup(srv)
			}
			m := serviceaccount.NewMetrics(nil)
			rec := &recorder{}
			iss := issuer
			if tc.issuer == "-" {
				iss = ""
			}
			h := &serviceaccount.Handler{Mode: tc.mode, FailClosed: tc.failClosed, Timeout: time.Second, IssuerURL: iss,
				Defaults: irsa.NewDefaults(), ExcludedNamespaces: []string{"kube-system"}, Source: src, Events: rec, Metrics: m, Log: logr.Discard(), Mapped: tc.mapped}
			start := time.Now()
			resp := h.Handle(context.Background(), tc.req)
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("answer took %s, beyond the 1s deadline", took)
			}
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v, warnings %q)", resp.Allowed, tc.allowed, resp.Result, resp.Warnings)
			}
			if !resp.Allowed && (resp.Result == nil || resp.Result.Code != http.StatusForbidden || !strings.HasPrefix(resp.Result.Message, "irsa-webhook: ")) {
				t.Errorf("denial without a clear 403 message: %+v", resp.Result)
			}
			switch {
			case tc.wantWarning == "" && tc.allowed && len(resp.Warnings) > 0:
				t.Errorf("unexpected warnings %q", resp.Warnings)
			case tc.wantWarning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.wantWarning)):
				t.Errorf("warnings = %q, want one containing %q", resp.Warnings, tc.wantWarning)
			}
			switch {
			case tc.wantEvent == "" && len(rec.events) > 0:
				t.Errorf("unexpected events %+v", rec.events)
			case tc.wantEvent != "" && (len(rec.events) != 1 || rec.events[0].reason != tc.wantEvent || rec.events[0].eventType != "Warning"):
				t.Errorf("events = %+v, want one Warning %s", rec.events, tc.wantEvent)
			}
			for _, e := range rec.recorded {
				if e.Namespace != tc.req.Namespace || e.Name != tc.req.Object.Name || e.UID != tc.req.Object.UID || e.UID == "" {
					t.Errorf("event for %s/%s uid %q, want the request's object %s/%s uid %q", e.Namespace, e.Name, e.UID, tc.req.Namespace, tc.req.Object.Name, tc.req.Object.UID)
				}
			}
			for _, label := range []string{"trusted", "not_trusted", "undetermined"} {
				want := 0.0
				if label == tc.wantVerdict {
					want = 1
				}
				if got := testutil.ToFloat64(m.Checks.WithLabelValues(label)); got != want {
					t.Errorf("trust_checks_total{verdict=%q} = %v, want %v", label, got, want)
				}
			}
		})
	}
}

// TestHandlerCachesIAM: many admissions naming few roles cost one GetRole per role.
func TestHandlerCachesIAM(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	const roles = 10
	for i := range roles {
		srv.PutRole(fmt.Sprintf("arn:aws:iam::123456789012:role/R%d", i), policyFor(t, "production", "s3-writer"))
	}
	src := newSource(t, srv)
	srv.ResetCalls() // the STS caller-identity call made by newSource
	h := &serviceaccount.Handler{Mode: serviceaccount.Warn, Timeout: 2 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(),
		Source: src, Metrics: serviceaccount.NewMetrics(nil), Log: logr.Discard()}
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Handle(context.Background(), saRequest(admissionv1.Create, "production", fmt.Sprintf("sa-%d", i), role(fmt.Sprintf("arn:aws:iam::123456789012:role/R%d", i%roles)), nil, true))
		}()
	}
	wg.Wait()
	if got := srv.TotalCalls(); got != roles {
		t.Errorf("GetRole calls = %d, want %d", got, roles)
	}
}

// TestOnInternalError: a panic of the trust check is denied only in enforce mode with
// fail-closed, like everything else it cannot verify.
func TestOnInternalError(t *testing.T) {
	tests := []struct {
		name       string
		mode       serviceaccount.Mode
		failClosed bool
		want       admission.OnInternalError
	}{
		{"warn", serviceaccount.Warn, false, admission.AdmitOnInternalError},
		{"warn, fail closed (ignored outside enforce)", serviceaccount.Warn, true, admission.AdmitOnInternalError},
		{"enforce", serviceaccount.Enforce, false, admission.AdmitOnInternalError},
		{"enforce, fail closed", serviceaccount.Enforce, true, admission.DenyOnInternalError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &serviceaccount.Handler{Mode: tc.mode, FailClosed: tc.failClosed}
			if got := h.OnInternalError(); got != tc.want {
				t.Errorf("OnInternalError() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHandlerUniqueRoleNamesAreRateLimited: 1,000 admissions naming 1,000 distinct roles
// (each would defeat the cache) cost at most the bucket's burst plus rate × duration
// GetRole calls at the IAM endpoint; the others are "not verified (rate limited)", counted.
func TestHandlerUniqueRoleNamesAreRateLimited(t *testing.T) {
	const admissions, workers = 1000, 50
	srv := iamserver.New()
	defer srv.Close()
	src := newSource(t, srv) // the defaults: awsiam.DefaultRateLimit, awsiam.DefaultRateBurst
	srv.ResetCalls()         // the STS caller-identity call made by newSource
	m := serviceaccount.NewMetrics(nil)
	h := &serviceaccount.Handler{Mode: serviceaccount.Enforce, Timeout: 2 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(),
		Source: src, Metrics: m, Log: logr.Discard()}
	var limitedWarnings atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < admissions; i += workers {
				resp := h.Handle(context.Background(), saRequest(admissionv1.Create, "tenant", fmt.Sprintf("sa-%d", i),
					role(fmt.Sprintf("arn:aws:iam::123456789012:role/unique-%d", i)), nil, false))
				switch {
				case resp.Allowed && len(resp.Warnings) == 1 && strings.Contains(resp.Warnings[0], "rate limited"):
					limitedWarnings.Add(1)
				case resp.Allowed: // on a loaded machine a lookup may also run out of time
					t.Logf("admission %d: allowed with warnings %q", i, resp.Warnings)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	calls := srv.TotalCalls()
	bound := awsiam.DefaultRateBurst + int(awsiam.DefaultRateLimit*elapsed.Seconds()) + 1
	t.Logf("%d admissions with distinct roles in %s: %d GetRole calls (bound %d), %d rate limited", admissions, elapsed.Round(time.Millisecond), calls, bound, limitedWarnings.Load())
	if calls > bound {
		t.Errorf("%d GetRole calls, want at most burst + rate × duration = %d", calls, bound)
	}
	limited := int(limitedWarnings.Load())
	if got := testutil.ToFloat64(m.RateLimited); int(got) != limited || limited < admissions-bound {
		t.Errorf("rate-limited metric %v, rate-limited warnings %d, want equal and at least %d (admissions past the bound)", got, limited, admissions-bound)
	}
}
