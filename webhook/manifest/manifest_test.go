package manifest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
)

// TestMutateAppliesTheWebhookLimits: the mutate command refuses what the webhook refuses
// (too many containers, a skip list longer than a pod can have containers), through the
// same functions, so its output is what the API server would store.
func TestMutateAppliesTheWebhookLimits(t *testing.T) {
	sa := irsa.Object{Namespace: "production", Name: "s3-writer", Annotations: map[string]string{
		"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/S3WriterRole"}}
	containers := func(n int) string {
		cs := make([]string, n)
		for i := range cs {
			cs[i] = fmt.Sprintf(`{"name":"c%d","image":"app:1"}`, i)
		}
		return strings.Join(cs, ",")
	}
	podDoc := func(annotations string, n int) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"production","annotations":{` + annotations + `}},` +
			`"spec":{"serviceAccountName":"s3-writer","containers":[` + containers(n) + `]}}`
	}
	tests := []struct {
		name        string
		doc         string
		wantChanged bool
		wantWarning string
	}{
		{name: "pod at the container limit", doc: podDoc("", irsa.MaxContainers), wantChanged: true},
		{name: "pod over the container limit", doc: podDoc("", irsa.MaxContainers+1), wantWarning: "251 containers (init and regular), more than the 250"},
		{name: "deployment over the limit with init containers", doc: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"production"},"spec":{"template":{"spec":{` +
			`"serviceAccountName":"s3-writer","initContainers":[` + containers(200) + `],"containers":[` + containers(51) + `]}}}}`, wantWarning: "251 containers"},
		{name: "skip list over the limit", doc: podDoc(`"eks.amazonaws.com/skip-containers":"`+strings.Repeat("x,", irsa.MaxSkipContainers)+`c0"`, 2), wantWarning: "lists 251 entries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := manifest.Mutate([]byte(tc.doc), sa, irsa.NewDefaults(), nil, manifest.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed != tc.wantChanged || strings.Contains(string(res.Object), irsa.EnvRoleARN) != tc.wantChanged {
				t.Errorf("changed = %v (role in output: %v), want %v", res.Changed, strings.Contains(string(res.Object), irsa.EnvRoleARN), tc.wantChanged)
			}
			switch {
			case tc.wantWarning == "" && len(res.Warnings) > 0:
				t.Errorf("unexpected warnings %q", res.Warnings)
			case tc.wantWarning != "" && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], tc.wantWarning)):
				t.Errorf("warnings = %q, want one containing %q", res.Warnings, tc.wantWarning)
			}
		})
	}
}
