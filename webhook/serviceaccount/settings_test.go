package serviceaccount_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// oneRoleSource trusts, for one role, exactly the audience the pod path would put in the
// token, and records which roles the check asked for. It stands in for IAM: what is under
// test is which role and audience the check evaluates.
type oneRoleSource struct {
	policy string
	mu     sync.Mutex
	asked  []string
}

func (s *oneRoleSource) TrustPolicy(_ context.Context, roleARN string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, roleARN)
	return s.policy, nil
}

// TestTrustCheckEvaluatesWhatPodsGet pins one source of truth: for odd annotations, the
// trust check evaluates exactly the role and audience the pod path injects (irsa.ConfigFor),
// and a role the pods would not get is never looked up in IAM.
func TestTrustCheckEvaluatesWhatPodsGet(t *testing.T) {
	const ns, name = "production", "s3-writer"
	otherAccount := "arn:aws:iam::210987654321:role/S3WriterRole"
	tests := []struct {
		name    string
		ann     map[string]string
		allowed []string // Defaults.AllowedRoleAccounts
	}{
		{name: "plain role", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole}},
		{name: "role with surrounding whitespace", ann: map[string]string{"eks.amazonaws.com/role-arn": "  " + goodRole + "\n"}},
		{name: "audience with a space (invalid, pods use the default)", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole, "eks.amazonaws.com/audience": "sts.amazonaws.com x"}},
		{name: "audience with surrounding whitespace", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole, "eks.amazonaws.com/audience": " my-audience "}},
		{name: "empty audience", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole, "eks.amazonaws.com/audience": ""}},
		{name: "custom audience", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole, "eks.amazonaws.com/audience": "my-audience"}},
		{name: "audience of 300 characters", ann: map[string]string{"eks.amazonaws.com/role-arn": goodRole, "eks.amazonaws.com/audience": strings.Repeat("a", 300)}},
		{name: "invalid role ARN", ann: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/x y"}},
		{name: "role that is a user", ann: map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:user/bob"}},
		{name: "empty role", ann: map[string]string{"eks.amazonaws.com/role-arn": ""}},
		{name: "role in an account not allowed", ann: map[string]string{"eks.amazonaws.com/role-arn": otherAccount}, allowed: []string{"123456789012"}},
		{name: "missing role", ann: map[string]string{"eks.amazonaws.com/audience": "my-audience"}},
		{name: "no annotations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := irsa.NewDefaults()
			d.AllowedRoleAccounts = tc.allowed
			sa := irsa.Object{Namespace: ns, Name: name, Annotations: tc.ann}
			cfg, decision, _ := irsa.ConfigFor(sa, irsa.Object{Namespace: ns, Name: "p"}, d)

			src := &oneRoleSource{policy: "{}"}
			if decision == irsa.Inject {
				doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: cfg.RoleARN, IssuerURL: issuer, Namespace: ns, ServiceAccount: name, Audience: cfg.Audience})
				if err != nil {
					t.Fatal(err)
				}
				src.policy = doc
			}
			m := serviceaccount.NewMetrics(nil)
			h := &serviceaccount.Handler{Mode: serviceaccount.Enforce, Timeout: time.Second, IssuerURL: issuer, Defaults: d,
				Source: src, Metrics: m, Log: logr.Discard()}
			resp := h.Handle(context.Background(), saRequest(admissionv1.Create, ns, name, tc.ann, nil, false))

			v, hasRole := serviceaccount.CheckServiceAccount(context.Background(), src, issuer, sa, d)
			switch decision {
			case irsa.Inject: // pods get cfg.RoleARN with cfg.Audience: that is what must be checked
				if !resp.Allowed {
					t.Errorf("denied, though the policy trusts the role and audience pods get (%q, %q): %+v", cfg.RoleARN, cfg.Audience, resp.Result)
				}
				if got := testutil.ToFloat64(m.Checks.WithLabelValues("trusted")); got != 1 {
					t.Errorf("trusted checks = %v, want 1", got)
				}
				if v.RoleARN != cfg.RoleARN || v.Audience != cfg.Audience || v.Result != trustpolicy.Trusted {
					t.Errorf("check evaluated role %q audience %q (%v); pods get role %q audience %q", v.RoleARN, v.Audience, v.Result, cfg.RoleARN, cfg.Audience)
				}
				if want := []string{cfg.RoleARN, cfg.RoleARN}; !slices.Equal(src.asked, want) {
					t.Errorf("asked IAM for %q, want %q", src.asked, want)
				}
			case irsa.InvalidAnnotation: // pods get nothing: not trusted, and IAM is not asked
				if resp.Allowed {
					t.Errorf("allowed in enforce mode a role pods will never get (warnings %q)", resp.Warnings)
				}
				if !hasRole || v.Result != trustpolicy.NotTrusted {
					t.Errorf("verdict %v (hasRole %v), want not trusted", v.Result, hasRole)
				}
				if len(src.asked) != 0 {
					t.Errorf("asked IAM for %q, a role pods will never get", src.asked)
				}
			case irsa.NoRole:
				if !resp.Allowed || len(resp.Warnings) != 0 || hasRole || len(src.asked) != 0 {
					t.Errorf("a ServiceAccount without a role: allowed %v warnings %q hasRole %v asked %q", resp.Allowed, resp.Warnings, hasRole, src.asked)
				}
			default:
				t.Fatalf("unexpected pod decision %s", decision)
			}
		})
	}
}
