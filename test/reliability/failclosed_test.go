package reliability_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// TestFailClosedUndecodable: with --trust-check=enforce --trust-check-fail-closed, a
// ServiceAccount review whose object the webhook cannot decode (an annotation that is a
// number: a direct POST can send one) is denied, while a pod review with the same defect is
// still allowed: pods are never denied for the webhook's own trouble.
func TestFailClosedUndecodable(t *testing.T) {
	iam := newIAM(t)
	w := startWebhook(t, []string{"--trust-check=enforce", "--trust-check-fail-closed", "--oidc-issuer-url=" + testIssuer}, iamEnv(t, iam, "reliability-failclosed-secret"))
	c := newReviewClient(w.URL(""), true, w.tls.CAPEM)
	defer c.close()
	review := func(uid, resource, kind string) []byte {
		return fmt.Appendf(nil, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":%q,`+
			`"kind":{"group":"","version":"v1","kind":%q},"resource":{"group":"","version":"v1","resource":%q},"namespace":"tenant","name":"x","operation":"CREATE",`+
			`"object":{"apiVersion":"v1","kind":%q,"metadata":{"name":"x","namespace":"tenant","annotations":{%q:7}},"spec":{"containers":[{"name":"a","image":"i"}]}}}}`,
			uid, kind, resource, kind, roleAnnotation)
	}
	tests := []struct {
		name, path, resource, kind string
		wantAllowed                bool
	}{
		{name: "serviceaccount denied", path: webhookproc.ServiceAccountPath, resource: "serviceaccounts", kind: "ServiceAccount", wantAllowed: false},
		{name: "pod allowed", path: webhookproc.PodPath, resource: "pods", kind: "Pod", wantAllowed: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.url = w.URL(tc.path)
			uid := "failclosed-" + strconv.Itoa(i)
			a, err := c.post(t.Context(), uid, review(uid, tc.resource, tc.kind))
			if err != nil {
				t.Fatal(err)
			}
			if a.allowed != tc.wantAllowed {
				t.Errorf("allowed = %v, want %v (warnings %q)", a.allowed, tc.wantAllowed, a.warnings)
			}
			if tc.wantAllowed && (len(a.warnings) != 1 || !strings.Contains(a.warnings[0], "cannot decode")) {
				t.Errorf("warnings %q, want one saying the object does not decode", a.warnings)
			}
		})
	}
}
