package serviceaccount_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// TestHandlerDisclosure: a tenant who can create (or dry-run) a ServiceAccount learns from
// the warning, the denial and the Event only the verdict and which of its own claims
// failed, with the values it sent: never another statement's principals or condition
// values, and not whether the role exists. The webhook's debug log has the full findings.
func TestHandlerDisclosure(t *testing.T) {
	const (
		otherRole   = "arn:aws:iam::123456789012:role/OtherRole"
		otherAWS    = "arn:aws:iam::123456789012:user/payments-admin"
		otherIssuer = "oidc.eks.eu-west-1.amazonaws.com/id/0THERC1USTER0000000000000000000"
		missingRole = "arn:aws:iam::123456789012:role/NoSuchRole"
	)
	// Secrets of the policies: what they trust. None may reach the tenant.
	secrets := []string{"payments", "billing", "payments-admin", otherIssuer, "0THERC1USTER", "vault.example.com"}
	otherCluster := strings.NewReplacer("oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE", otherIssuer).
		Replace(policyFor(t, "billing", "payments"))
	policies := map[string]string{
		// Another namespace's ServiceAccount on this cluster.
		goodRole: policyFor(t, "payments", "billing"),
		// Another cluster's provider, a person, and a Deny naming an audience.
		otherRole: strings.Replace(otherCluster, `"Statement": [`, `"Statement": [{"Effect": "Allow", "Principal": {"AWS": "`+otherAWS+`"}, "Action": "sts:AssumeRole"},
			{"Effect": "Deny", "Principal": "*", "Action": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": "vault.example.com"}}},`, 1),
	}
	srv := iamserver.New()
	defer srv.Close()
	for role, doc := range policies {
		srv.PutRole(role, doc)
	}
	src := newSource(t, srv)

	type seen struct{ warnings, events []string }
	check := func(t *testing.T, mode serviceaccount.Mode, arn string) (seen, string) {
		var log strings.Builder
		h := &serviceaccount.Handler{Mode: mode, Timeout: 2 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(), Source: src,
			Events: &recorder{}, Metrics: serviceaccount.NewMetrics(nil),
			Log: funcr.New(func(prefix, args string) { log.WriteString(args + "\n") }, funcr.Options{Verbosity: 1})}
		resp := h.Handle(context.Background(), saRequest(admissionv1.Create, "team-b", "app", role(arn), nil, false))
		var s seen
		s.warnings = resp.Warnings
		if resp.Result != nil && resp.Result.Message != "" {
			s.warnings = append(s.warnings, resp.Result.Message)
		}
		for _, e := range h.Events.(*recorder).events {
			s.events = append(s.events, e.note)
		}
		return s, log.String()
	}
	var notTrusted []string
	for _, tc := range []struct {
		name  string
		role  string
		want  string // in every warning and event
		inLog string // in the debug log
	}{
		{"another namespace's ServiceAccount", goodRole, `does not accept sub "system:serviceaccount:team-b:app"`, "system:serviceaccount:payments:billing"},
		{"another cluster, a user and a Deny", otherRole, `does not accept tokens from the OIDC provider "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"`,
			otherAWS},
		{"a role that does not exist", missingRole, `does not accept tokens from the OIDC provider`, "does not exist"},
	} {
		for _, mode := range []serviceaccount.Mode{serviceaccount.Warn, serviceaccount.Enforce} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				s, log := check(t, mode, tc.role)
				if len(s.warnings) != 1 || len(s.events) != 1 {
					t.Fatalf("want one warning (or denial) and one event, got %q and %q", s.warnings, s.events)
				}
				for _, text := range append(s.warnings, s.events...) {
					if !strings.Contains(text, tc.want) {
						t.Errorf("%q does not say %q", text, tc.want)
					}
					for _, secret := range secrets {
						if strings.Contains(text, secret) {
							t.Errorf("the tenant sees %q of the policy in %q", secret, text)
						}
					}
				}
				if !strings.Contains(log, tc.inLog) {
					t.Errorf("the debug log lacks the full findings (%s):\n%s", tc.inLog, log)
				}
				if mode == serviceaccount.Warn {
					notTrusted = append(notTrusted, strings.ReplaceAll(s.warnings[0], tc.role, "ROLE"))
				}
			})
		}
	}
	// A missing role and a role that does not trust this cluster's provider look the same.
	if len(notTrusted) == 3 && notTrusted[1] != notTrusted[2] {
		t.Errorf("a missing role is told apart from a role that does not trust the provider:\n %q\n %q", notTrusted[1], notTrusted[2])
	}

	// A trusted role whose policy is broad (any ServiceAccount of the namespace): what
	// else it trusts is the admin's business, so the tenant gets no warning.
	broadRole := "arn:aws:iam::123456789012:role/Broad"
	srv.PutRole(broadRole, strings.NewReplacer("system:serviceaccount:team-b:app", "system:serviceaccount:team-b:*", "StringEquals", "StringLike").Replace(policyFor(t, "team-b", "app")))
	h := &serviceaccount.Handler{Mode: serviceaccount.Warn, Timeout: 2 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(), Source: src, Metrics: serviceaccount.NewMetrics(nil)}
	if resp := h.Handle(context.Background(), saRequest(admissionv1.Create, "team-b", "app", role(broadRole), nil, false)); !resp.Allowed || len(resp.Warnings) > 0 {
		t.Errorf("trusted role: allowed %v, warnings %q; want allowed without a warning", resp.Allowed, resp.Warnings)
	}

	// --trust-check-detailed-warnings (single-tenant clusters) restores the full findings.
	t.Run("detailed warnings", func(t *testing.T) {
		rec := &recorder{}
		h := &serviceaccount.Handler{Mode: serviceaccount.Warn, Timeout: 2 * time.Second, IssuerURL: issuer, Defaults: irsa.NewDefaults(), Source: src,
			Events: rec, Metrics: serviceaccount.NewMetrics(nil), DetailedWarnings: true}
		resp := h.Handle(context.Background(), saRequest(admissionv1.Create, "team-b", "app", role(goodRole), nil, false))
		want := `sub StringEquals "system:serviceaccount:payments:billing" does not match "system:serviceaccount:team-b:app"`
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], want) || len(rec.events) != 1 || !strings.Contains(rec.events[0].note, want) {
			t.Errorf("warnings %q, events %+v; want the full finding %q", resp.Warnings, rec.events, want)
		}
		resp = h.Handle(context.Background(), saRequest(admissionv1.Create, "team-b", "app", role(broadRole), nil, false))
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "matches any service account name in the namespace") {
			t.Errorf("trusted broad role: warnings %q, want the broadness finding", resp.Warnings)
		}
	})
}
