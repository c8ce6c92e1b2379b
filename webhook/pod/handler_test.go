package pod_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

const testRole = "arn:aws:iam::123456789012:role/S3WriterRole"

type failingLookup struct{}

func (failingLookup) ServiceAccount(context.Context, string, string) (irsa.Object, bool, error) {
	return irsa.Object{}, false, errors.New("connection refused")
}

func saWith(ann map[string]string) irsa.Object {
	return irsa.Object{Namespace: "production", Name: "s3-writer", Annotations: ann}
}

func podJSON(annotations string, containers int) string {
	var cs []string
	for i := range containers {
		cs = append(cs, fmt.Sprintf(`{"name":"c%d","image":"app:1"}`, i))
	}
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"production","annotations":{` + annotations + `}},` +
		`"spec":{"serviceAccountName":"s3-writer","containers":[` + strings.Join(cs, ",") + `]}}`
}

// TestHandlerAnswers checks the answer for every kind of odd input: a clear warning and an
// allowed pod, never a denial, a 5xx or a panic.
func TestHandlerAnswers(t *testing.T) {
	tests := []struct {
		name        string
		sas         pod.ServiceAccounts
		pod         string // the pod's JSON; default podJSON("", 1)
		req         func(*admission.Request[pod.Pod])
		wantPatch   bool
		wantWarning string // substring of the only warning; "" = no warning
		wantOutcome pod.Outcome
		canceled    bool // the request's context has ended
	}{
		{name: "mutated", wantPatch: true, wantOutcome: pod.OutcomeMutated},
		{name: "another kind", req: func(r *admission.Request[pod.Pod]) {
			r.Resource = metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}
		}, wantWarning: "only pod creation is handled", wantOutcome: pod.OutcomeSkipped},
		{name: "update", req: func(r *admission.Request[pod.Pod]) { r.Operation = admissionv1.Update },
			wantWarning: "only pod creation is handled", wantOutcome: pod.OutcomeSkipped},
		{name: "subresource", req: func(r *admission.Request[pod.Pod]) { r.SubResource = "ephemeralcontainers" },
			wantWarning: "only pod creation is handled", wantOutcome: pod.OutcomeSkipped},
		{name: "excluded namespace", req: func(r *admission.Request[pod.Pod]) { r.Namespace = "kube-system" }, wantOutcome: pod.OutcomeExcluded},
		{name: "invalid pod object", pod: `{"spec":{"containers":"nope"}}`,
			wantWarning: "cannot decode the pod", wantOutcome: pod.OutcomeError},
		{name: "missing service account", sas: fakeServiceAccounts{}, wantWarning: "serviceaccount production/s3-writer not found", wantOutcome: pod.OutcomeMissingServiceAccount},
		{name: "lookup error", sas: failingLookup{}, wantWarning: "could not look up serviceaccount", wantOutcome: pod.OutcomeError},
		{name: "role ARN with a newline", sas: fakeServiceAccounts{"production/s3-writer": saWith(map[string]string{"eks.amazonaws.com/role-arn": testRole + "\nAWS_SECRET=x"})},
			wantWarning: "control or non-ASCII character", wantOutcome: pod.OutcomeInvalidAnnotation},
		{name: "role ARN with quotes", sas: fakeServiceAccounts{"production/s3-writer": saWith(map[string]string{"eks.amazonaws.com/role-arn": `arn:aws:iam::123456789012:role/"x"`})},
			wantWarning: "invalid character", wantOutcome: pod.OutcomeInvalidAnnotation},
		{name: "role ARN of 100 KB with invalid UTF-8", sas: fakeServiceAccounts{"production/s3-writer": saWith(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/\xff" + strings.Repeat("a", 100<<10)})},
			wantWarning: "non-ASCII", wantOutcome: pod.OutcomeInvalidAnnotation},
		{name: "token expiration -1", pod: podJSON(`"eks.amazonaws.com/token-expiration":"-1"`, 1), wantPatch: true, wantWarning: "raised to the minimum of 600", wantOutcome: pod.OutcomeMutated},
		{name: "token expiration 1e9", pod: podJSON(`"eks.amazonaws.com/token-expiration":"1e9"`, 1), wantPatch: true, wantWarning: `"1e9" ignored`, wantOutcome: pod.OutcomeMutated},
		{name: "token expiration 0x10", pod: podJSON(`"eks.amazonaws.com/token-expiration":"0x10"`, 1), wantPatch: true, wantWarning: `"0x10" ignored`, wantOutcome: pod.OutcomeMutated},
		{name: "100 KB annotation value", pod: podJSON(`"eks.amazonaws.com/token-expiration":"`+strings.Repeat("9", 100<<10)+`"`, 1), wantPatch: true, wantWarning: "ignored", wantOutcome: pod.OutcomeMutated},
		{name: "invalid UTF-8 in an annotation", pod: podJSON("\"eks.amazonaws.com/skip-containers\":\"\xff\xfe\"", 1), wantPatch: true, wantOutcome: pod.OutcomeMutated},
		{name: "250 containers", pod: podJSON("", irsa.MaxContainers), wantPatch: true, wantOutcome: pod.OutcomeMutated},
		{name: "251 containers", pod: podJSON("", irsa.MaxContainers+1), wantWarning: "the pod has 251 containers (init and regular), more than the 250", wantOutcome: pod.OutcomeTooManyContainers},
		{name: "5000 containers", pod: podJSON("", 5000), wantWarning: "admitted unchanged", wantOutcome: pod.OutcomeTooManyContainers},
		{name: "skip list of 250 entries", pod: podJSON(`"eks.amazonaws.com/skip-containers":"`+strings.Repeat("x,", irsa.MaxSkipContainers-1)+`c0"`, 2), wantPatch: true, wantOutcome: pod.OutcomeMutated},
		{name: "skip list of 251 entries", pod: podJSON(`"eks.amazonaws.com/skip-containers":"`+strings.Repeat("x,", irsa.MaxSkipContainers)+`c0"`, 2),
			wantWarning: "lists 251 entries, more than the 250", wantOutcome: pod.OutcomeInvalidAnnotation},
		{name: "request already canceled", canceled: true, wantWarning: "context canceled", wantOutcome: pod.OutcomeCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sas := tc.sas
			if sas == nil {
				sas = fakeServiceAccounts{"production/s3-writer": saWith(map[string]string{"eks.amazonaws.com/role-arn": testRole})}
			}
			m := pod.NewMetrics(nil)
			h := &pod.Handler{Defaults: irsa.NewDefaults(), ServiceAccounts: sas, ExcludedNamespaces: []string{"kube-system"}, Metrics: m, Log: logr.Discard()}
			js := tc.pod
			if js == "" {
				js = podJSON("", 1)
			}
			rv, err := admission.DecodeReview[pod.Pod](review(t, []byte(js)))
			if err != nil {
				t.Fatal(err)
			}
			req := rv.Request
			req.Namespace = "production"
			if tc.req != nil {
				tc.req(req)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.canceled {
				cancel()
			}
			resp := h.Handle(ctx, req)
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			if got := len(resp.Patch) > 0; got != tc.wantPatch {
				t.Errorf("patched = %v, want %v", got, tc.wantPatch)
			}
			switch {
			case tc.wantWarning == "" && len(resp.Warnings) > 0:
				t.Errorf("unexpected warnings %q", resp.Warnings)
			case tc.wantWarning != "" && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.wantWarning)):
				t.Errorf("warnings = %q, want one containing %q", resp.Warnings, tc.wantWarning)
			}
			for _, w := range resp.Warnings {
				if len(w) > 1024 {
					t.Errorf("warning of %d bytes; user values must be cut short", len(w))
				}
			}
			if got := testutil.ToFloat64(m.Mutations.WithLabelValues(string(tc.wantOutcome))); got != 1 {
				t.Errorf("outcome %s counted %v times, want 1", tc.wantOutcome, got)
			}
		})
	}
}
