package pod_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// goldenPods returns the JSON of every golden input pod, as fuzz seeds.
func goldenPods(f *testing.F) [][]byte {
	dirs, _ := filepath.Glob("testdata/*/pod.yaml")
	var out [][]byte
	for _, d := range dirs {
		out = append(out, readJSON(f, d))
	}
	return out
}

// FuzzHandle posts arbitrary bodies and content types: the answer is a 200 with an
// allowed review whose patch only adds, or a 4xx; never a 5xx, a denial or a panic.
func FuzzHandle(f *testing.F) {
	for _, p := range goldenPods(f) {
		f.Add(review(f, p), "application/json")
	}
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":null}}`), "application/json")
	f.Add([]byte("not json"), "text/plain")
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","namespace":"production","object":{"spec":{"containers":[{"name":"a","env":[{"name":1}]}]}}}}`), "application/json")
	h := newTestHandler(irsa.NewDefaults(), benchSA, irsa.Object{Namespace: "production", Name: "default", Annotations: benchSA.Annotations})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 400 && rec.Code < 500:
			return
		case rec.Code != http.StatusOK:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("unreadable answer (%v): %s", err, rec.Body)
		}
		if !out.Response.Allowed {
			t.Fatalf("pod denied: %+v", out.Response.Result)
		}
		checkOnlyAdds(t, out.Response.Patch)
	})
}

func checkOnlyAdds(t *testing.T, patch []byte) {
	t.Helper()
	if len(patch) == 0 {
		return
	}
	var ops []struct{ Op string }
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch is not JSON: %v", err)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Fatalf("patch has a %q operation", op.Op)
		}
	}
}

// FuzzMutate mutates arbitrary pods with arbitrary annotations: never panics, only adds,
// the patch applies, a second pass adds nothing, and skipped containers stay as they were.
func FuzzMutate(f *testing.F) {
	for _, p := range goldenPods(f) {
		f.Add(p, "c0, istio-proxy", "3600", "")
	}
	f.Add([]byte(`{"spec":{"containers":[{"name":"a","env":[]}],"volumes":[]}}`), "a", "-1", "false")
	f.Fuzz(func(t *testing.T, podJSON []byte, skip, expiration, regional string) {
		var p corev1.Pod
		if json.Unmarshal(podJSON, &p) != nil {
			return
		}
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations["eks.amazonaws.com/skip-containers"] = skip
		p.Annotations["eks.amazonaws.com/token-expiration"] = expiration
		sa := irsa.Object{Namespace: "ns", Name: "sa", Annotations: map[string]string{
			"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/R", "eks.amazonaws.com/sts-regional-endpoints": regional}}
		d := irsa.NewDefaults()
		d.Region = "us-east-1"
		cfg, decision, _ := irsa.ConfigFor(sa, irsa.Object{Annotations: p.Annotations, Labels: p.Labels}, d)
		if decision != irsa.Inject {
			return
		}
		if cfg.ExpirationSeconds < irsa.MinTokenExpiration || cfg.ExpirationSeconds > irsa.MaxTokenExpiration {
			t.Fatalf("expiration %d out of bounds", cfg.ExpirationSeconds)
		}
		doc, err := json.Marshal(&p)
		if err != nil {
			return
		}
		var view pod.Pod
		if json.Unmarshal(doc, &view) != nil {
			t.Fatalf("a pod's JSON does not decode into the view: %s", doc)
		}
		ops, warnings := pod.Mutate(&view.Spec, cfg, "/spec")
		raw, err := pod.MarshalPatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		checkOnlyAdds(t, raw)
		jp, err := jsonpatch.DecodePatch(raw)
		if err != nil {
			t.Fatal(err)
		}
		out, err := jp.Apply(doc)
		if err != nil {
			t.Fatalf("patch does not apply: %v\n%s", err, raw)
		}
		var after corev1.Pod
		var afterView pod.Pod
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &afterView); err != nil {
			t.Fatal(err)
		}
		again, againWarnings := pod.Mutate(&afterView.Spec, cfg, "/spec")
		if len(again) != 0 {
			t.Fatalf("not idempotent: second pass adds %v", again)
		}
		if !slices.Equal(warnings, againWarnings) {
			t.Fatalf("second pass warns %q, first %q", againWarnings, warnings)
		}
		var orig corev1.Pod // p as the patched document saw it (JSON drops empty lists)
		if err := json.Unmarshal(doc, &orig); err != nil {
			t.Fatal(err)
		}
		before := map[string]corev1.Container{}
		for _, c := range append(orig.Spec.InitContainers, orig.Spec.Containers...) {
			before[c.Name] = c
		}
		for _, c := range append(after.Spec.InitContainers, after.Spec.Containers...) {
			if cfg.Skips(c.Name) && !reflect.DeepEqual(before[c.Name], c) {
				t.Fatalf("skipped container %q changed", c.Name)
			}
		}
	})
}
