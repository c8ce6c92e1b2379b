package serviceaccount_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// fastBackoff keeps the retries of the tests in milliseconds.
var fastBackoff = wait.Backoff{Duration: time.Millisecond, Factor: 2, Steps: 10, Cap: 20 * time.Millisecond}

// flaky fails its first n calls, then returns value.
type flaky struct {
	n     int32
	calls atomic.Int32
	value string
}

func (f *flaky) lookup(context.Context) (string, error) {
	if f.calls.Add(1) <= f.n {
		return "", errors.New("connection refused")
	}
	return f.value, nil
}

func gauge(t *testing.T, reg *prometheus.Registry, dependency string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == "irsa_webhook_trust_check_dependencies_ready" && l.GetValue() == dependency {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no gauge for %s", dependency)
	return -1
}

func TestDependencies(t *testing.T) {
	tests := []struct {
		name      string
		failures  int32 // of the issuer lookup
		given     string
		wantCalls int32
	}{
		{name: "found at once", failures: 0, wantCalls: 1},
		{name: "found after retries", failures: 5, wantCalls: 6},
		{name: "given by a flag: never looked up", given: issuer, wantCalls: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			ds, err := serviceaccount.NewDependencies(reg, logr.Discard())
			if err != nil {
				t.Fatal(err)
			}
			ds.Backoff = fastBackoff
			f := &flaky{n: tc.failures, value: issuer}
			var known atomic.Pointer[string]
			var d *serviceaccount.Dependency
			if tc.given != "" {
				d = ds.Known(serviceaccount.DependencyIssuer, tc.given)
			} else {
				d = ds.Lookup(serviceaccount.DependencyIssuer, f.lookup, func(v string) { known.Store(&v) })
				if d.Value() != "" || ds.Check(nil) == nil || gauge(t, reg, serviceaccount.DependencyIssuer) != 0 {
					t.Fatalf("before Start: value %q, check %v, gauge %v; want unknown", d.Value(), ds.Check(nil), gauge(t, reg, serviceaccount.DependencyIssuer))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := ds.Start(ctx); err != nil || ctx.Err() != nil {
				t.Fatalf("Start = %v (ctx %v), want it to return once everything is known", err, ctx.Err())
			}
			if d.Value() != issuer || ds.Check(nil) != nil || gauge(t, reg, serviceaccount.DependencyIssuer) != 1 {
				t.Errorf("after Start: value %q, check %v, gauge %v; want known", d.Value(), ds.Check(nil), gauge(t, reg, serviceaccount.DependencyIssuer))
			}
			if got := f.calls.Load(); got != tc.wantCalls {
				t.Errorf("lookups = %d, want %d", got, tc.wantCalls)
			}
			if tc.given == "" && (known.Load() == nil || *known.Load() != issuer) {
				t.Errorf("onKnown got %v, want %q", known.Load(), issuer)
			}
		})
	}
}

// TestDependenciesStopWithContext: a dependency that never comes does not keep Start past
// its context, and the readiness check says which one is missing and why.
func TestDependenciesStopWithContext(t *testing.T) {
	ds, err := serviceaccount.NewDependencies(nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ds.Backoff = fastBackoff
	f := &flaky{n: 1 << 30}
	ds.Lookup(serviceaccount.DependencyAWSAccount, f.lookup, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ds.Start(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start returned %v after its context ended, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
	if f.calls.Load() < 2 {
		t.Errorf("lookups = %d, want retries", f.calls.Load())
	}
	if err := ds.Check(nil); err == nil || !strings.Contains(err.Error(), "aws_account not known yet: connection refused") {
		t.Errorf("Check = %v, want it to name aws_account and the last error", err)
	}
}

// TestHandlerReadsTheIssuerWhenKnown: the handler uses the discovered issuer as soon as it is
// known; before, enforce admits and says it did not verify.
func TestHandlerReadsTheIssuerWhenKnown(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	srv.PutRole(goodRole, policyFor(t, "production", "s3-writer"))
	ds, err := serviceaccount.NewDependencies(nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	ds.Backoff = fastBackoff
	gate := make(chan struct{})
	iss := ds.Lookup(serviceaccount.DependencyIssuer, func(ctx context.Context) (string, error) {
		select {
		case <-gate:
			return issuer, nil
		default:
			return "", errors.New("API server unreachable")
		}
	}, nil)
	m := serviceaccount.NewMetrics(nil)
	h := &serviceaccount.Handler{Mode: serviceaccount.Enforce, Timeout: time.Second, Issuer: iss.Value,
		Defaults: irsa.NewDefaults(), Source: newSource(t, srv), Metrics: m, Log: logr.Discard()}
	req := saRequest(admissionv1.Create, "staging", "s3-writer", role(goodRole), nil, true) // the role trusts production only

	resp := h.Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "issuer is not known yet") || !strings.Contains(resp.Warnings[0], "admitted unverified") {
		t.Fatalf("before discovery: allowed=%v warnings=%q; want admitted with a warning saying it was not verified", resp.Allowed, resp.Warnings)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	close(gate)
	if err := ds.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if resp := h.Handle(context.Background(), req); resp.Allowed {
		t.Fatalf("after discovery: allowed with %q; want denied", resp.Warnings)
	}
	if got := testutil.ToFloat64(m.Checks.WithLabelValues("not_trusted")); got != 1 {
		t.Errorf("not_trusted checks = %v, want 1", got)
	}
}
