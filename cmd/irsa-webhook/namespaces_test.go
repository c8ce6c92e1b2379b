package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// oneServiceAccount is the pod handler's lookup, holding one ServiceAccount.
type oneServiceAccount irsa.Object

func (o oneServiceAccount) ServiceAccount(_ context.Context, namespace, name string) (irsa.Object, bool, error) {
	if namespace == o.Namespace && name == o.Name {
		return irsa.Object(o), true, nil
	}
	return irsa.Object{}, false, nil
}

// TestMutateAndWebhookAgreeOnNamespaces: with default flags, `irsa-webhook mutate` injects
// exactly where the pod webhook built from serve's options does: in kube-system and every
// other namespace, but not in the webhook's own ($POD_NAMESPACE).
func TestMutateAndWebhookAgreeOnNamespaces(t *testing.T) {
	const own = "irsa-webhook"
	t.Setenv("POD_NAMESPACE", own)
	tests := []struct {
		namespace string
		want      bool // credentials injected
	}{
		{"kube-system", true},
		{"production", true},
		{own, false},
	}
	for _, tc := range tests {
		t.Run(tc.namespace, func(t *testing.T) {
			sa := irsa.Object{Namespace: tc.namespace, Name: "s3-writer", Annotations: map[string]string{
				irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation): "arn:aws:iam::123456789012:role/S3WriterRole"}}
			podDoc := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"app","namespace":"` + tc.namespace + `"},` +
				`"spec":{"serviceAccountName":"s3-writer","containers":[{"name":"app","image":"app:1"}]}}`

			// The webhook, as serve wires it from its parsed default options.
			o := newServeOptions()
			if err := newServeCommand(o).ParseFlags(nil); err != nil {
				t.Fatal(err)
			}
			h := admission.NewServer[pod.Pod]("pod", &pod.Handler{Defaults: o.defaults, ServiceAccounts: oneServiceAccount(sa),
				ExcludedNamespaces: admission.ExcludedNamespaces(o.excludedNamespaces), Metrics: pod.NewMetrics(nil), Log: logr.Discard()},
				logr.Discard(), admission.NewMetrics(nil))
			review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",` +
				`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
				`"namespace":"` + tc.namespace + `","operation":"CREATE","userInfo":{},"object":` + podDoc + `}}`
			req := httptest.NewRequest(http.MethodPost, podWebhookPath, strings.NewReader(review))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("webhook answered %d %s (%v)", rec.Code, rec.Body, err)
			}
			webhookInjects := bytes.Contains(out.Response.Patch, []byte(irsa.EnvRoleARN))

			// The offline command, with its default flags.
			saFile := filepath.Join(t.TempDir(), "sa.json")
			saDoc, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
				"metadata": map[string]any{"name": sa.Name, "namespace": sa.Namespace, "annotations": sa.Annotations}})
			if err := os.WriteFile(saFile, saDoc, 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runCmd(t, podDoc, "mutate", "--service-account", saFile, "-")
			if code != 0 {
				t.Fatalf("mutate exited %d: %s", code, stderr)
			}
			mutateInjects := strings.Contains(stdout, irsa.EnvRoleARN)

			if webhookInjects != mutateInjects {
				t.Fatalf("in namespace %s the webhook injects: %v, mutate injects: %v (stderr %q)", tc.namespace, webhookInjects, mutateInjects, stderr)
			}
			if webhookInjects != tc.want {
				t.Errorf("in namespace %s credentials injected: %v, want %v", tc.namespace, webhookInjects, tc.want)
			}
			if !tc.want && !strings.Contains(stderr, "leaves alone (--excluded-namespaces)") {
				t.Errorf("mutate does not say why nothing was injected: %q", stderr)
			}
		})
	}
}
