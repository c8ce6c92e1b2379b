package chart_test

import (
	"slices"
	"strings"
	"testing"
)

// TestTrustCheckOnly: webhook.mutating.enabled=false, for EKS next to AWS's managed webhook,
// renders the ServiceAccount check only: no MutatingWebhookConfiguration, the binary told not
// to serve the pod path, and in self-managed mode the CA written into the
// ValidatingWebhookConfiguration alone, with RBAC for that one.
func TestTrustCheckOnly(t *testing.T) {
	for _, certs := range []string{"self-managed", "cert-manager"} {
		t.Run(certs, func(t *testing.T) {
			r := render(t, values{"webhook": values{"mutating": values{"enabled": false}}, "certs": values{"mode": certs}})
			if r.has("MutatingWebhookConfiguration", fullname) {
				t.Error("MutatingWebhookConfiguration rendered with webhook.mutating.enabled=false")
			}
			v := validating(t, r)
			if v.ClientConfig.Service == nil || v.ClientConfig.Service.Path == nil || *v.ClientConfig.Service.Path != "/validate-v1-serviceaccount" {
				t.Errorf("trust check clientConfig %+v", v.ClientConfig)
			}
			a := args(t, r)
			if !slices.Contains(a, "--mutate-pods=false") {
				t.Errorf("args %v lack --mutate-pods=false", a)
			}
			if i := slices.IndexFunc(a, func(s string) bool { return strings.HasPrefix(s, "--mutating-webhook-configuration") }); i >= 0 {
				t.Errorf("args name a MutatingWebhookConfiguration (%s) the chart did not render", a[i])
			}
			for _, rule := range clusterRole(t, r).Rules {
				if slices.Contains(rule.Resources, "mutatingwebhookconfigurations") {
					t.Errorf("ClusterRole grants %v on mutatingwebhookconfigurations", rule.Verbs)
				}
			}
			if certs == "self-managed" && !slices.Contains(a, "--validating-webhook-configuration="+fullname) {
				t.Errorf("args %v do not write the CA into the ValidatingWebhookConfiguration", a)
			}
		})
	}
}
