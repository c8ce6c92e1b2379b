package pod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

var update = flag.Bool("update", false, "rewrite the golden want.yaml and warnings.txt files")

// goldenCases lists every directory under testdata with the server defaults it runs with.
// Each directory holds pod.yaml and serviceaccount.yaml (inputs), want.yaml (the pod as
// admitted) and warnings.txt (the admission warnings, one a line).
var goldenCases = []struct {
	name     string
	defaults func(*irsa.Defaults)
}{
	{name: "basic"},
	{name: "no-role"},
	{name: "invalid-role-arn"},
	{name: "partition-and-path"},
	{name: "audience-and-default-sa"},
	{name: "existing-volume-and-mounts"},
	{name: "mount-path-conflict"},
	{name: "mount-path-conflict-every-container"},
	{name: "env-pairs-user-set", defaults: func(d *irsa.Defaults) { d.Region = "us-east-1"; d.STSRegionalEndpoint = true }},
	{name: "region-and-sts-flags", defaults: func(d *irsa.Defaults) { d.Region = "us-west-2"; d.STSRegionalEndpoint = true }},
	{name: "sts-regional-sa-false", defaults: func(d *irsa.Defaults) { d.STSRegionalEndpoint = true }},
	{name: "sts-regional-sa-true"},
	{name: "token-expiration-pod-wins"},
	{name: "token-expiration-clamped-and-ignored"},
	{name: "token-expiration-above-max"},
	{name: "skip-containers"},
	{name: "skip-label"},
	{name: "windows-node-selector"},
	{name: "windows-beta-node-selector"},
	{name: "windows-spec-os"},
	{name: "windows-node-affinity"},
	{name: "init-and-native-sidecar"},
	{name: "unknown-fields-survive"},
	{name: "role-account-not-allowed", defaults: func(d *irsa.Defaults) { d.AllowedRoleAccounts = []string{"111122223333"} }},
}

// TestGolden runs each case through the pure path (ConfigFor + Mutate, patch applied to
// the input document) and through the HTTP handler (AdmissionReview in, patch out),
// and checks both against the same golden files, then checks idempotency.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", tc.name)
			d := irsa.NewDefaults()
			if tc.defaults != nil {
				tc.defaults(&d)
			}
			podJSON := readJSON(t, filepath.Join(dir, "pod.yaml"))
			saDoc, err := os.ReadFile(filepath.Join(dir, "serviceaccount.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			sa, err := manifest.ServiceAccount(saDoc)
			if err != nil {
				t.Fatal(err)
			}

			// Pure path.
			var p pod.Pod
			if err := json.Unmarshal(podJSON, &p); err != nil {
				t.Fatal(err)
			}
			cfg, decision, pureWarnings := irsa.ConfigFor(sa, irsa.Object{Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, Annotations: p.Metadata.Annotations, Labels: p.Metadata.Labels}, d)
			var ops []pod.Op
			if decision == irsa.Inject {
				var mutateWarnings []string
				ops, mutateWarnings = pod.Mutate(&p.Spec, cfg, "/spec")
				pureWarnings = append(pureWarnings, mutateWarnings...)
			}
			pureOut := applyOps(t, podJSON, mustJSON(t, ops))

			// Handler path.
			h := newTestHandler(d, sa)
			resp := postReview(t, h, podJSON)
			if !resp.Allowed {
				t.Fatalf("pod denied: %+v", resp.Result)
			}
			checkAddOnly(t, podJSON, resp.Patch)
			handlerOut := applyOps(t, podJSON, resp.Patch)
			if !bytes.Equal(canonical(t, pureOut), canonical(t, handlerOut)) {
				t.Errorf("pure path and handler disagree:\npure:\n%s\nhandler:\n%s", toYAML(t, pureOut), toYAML(t, handlerOut))
			}
			for i := range pureWarnings {
				pureWarnings[i] = pod.WarningPrefix + pureWarnings[i]
			}
			if strings.Join(pureWarnings, "\n") != strings.Join(resp.Warnings, "\n") {
				t.Errorf("warnings differ: pure %q, handler %q", pureWarnings, resp.Warnings)
			}
			compareGolden(t, filepath.Join(dir, "want.yaml"), toYAML(t, handlerOut))
			compareGolden(t, filepath.Join(dir, "warnings.txt"), []byte(warningsText(resp.Warnings)))

			// Idempotency: admitting the admitted pod again changes nothing.
			again := postReview(t, h, handlerOut)
			if len(again.Patch) != 0 {
				t.Errorf("second admission patched again: %s", again.Patch)
			}
		})
	}
}

type fakeServiceAccounts map[string]irsa.Object

func (f fakeServiceAccounts) ServiceAccount(_ context.Context, ns, name string) (irsa.Object, bool, error) {
	sa, ok := f[ns+"/"+name]
	return sa, ok, nil
}

func newTestHandler(d irsa.Defaults, sas ...irsa.Object) *admission.Server[pod.Pod] {
	f := fakeServiceAccounts{}
	for _, sa := range sas {
		f[sa.Namespace+"/"+sa.Name] = sa
	}
	return admission.NewServer[pod.Pod]("pod", &pod.Handler{Defaults: d, ServiceAccounts: f, ExcludedNamespaces: []string{"kube-system"}, Metrics: pod.NewMetrics(nil), Log: logr.Discard()},
		logr.Discard(), admission.NewMetrics(nil))
}

// review wraps a pod in an AdmissionReview as the API server sends it.
func review(t testing.TB, podJSON []byte) []byte {
	t.Helper()
	var meta struct {
		Metadata struct{ Namespace, Name string }
	}
	if err := json.Unmarshal(podJSON, &meta); err != nil {
		t.Fatal(err)
	}
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"0b1e5a44-2f7c-4a8e-9d1b-6f0b3c2a1d00",` +
		`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},` +
		`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},` +
		`"name":` + strconv.Quote(meta.Metadata.Name) + `,"namespace":` + strconv.Quote(meta.Metadata.Namespace) + `,"operation":"CREATE",` +
		`"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},"object":` + string(podJSON) + `,"oldObject":null,"dryRun":false}}`)
}

func postReview(t testing.TB, h http.Handler, podJSON []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader(review(t, podJSON)))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if out.Response == nil || out.Response.UID != "0b1e5a44-2f7c-4a8e-9d1b-6f0b3c2a1d00" {
		t.Fatalf("response missing or UID not echoed: %s", rec.Body)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
		t.Fatalf("response apiVersion/kind = %q/%q", out.APIVersion, out.Kind)
	}
	if len(out.Response.Patch) > 0 && (out.Response.PatchType == nil || *out.Response.PatchType != admissionv1.PatchTypeJSONPatch) {
		t.Fatalf("patch without JSONPatch patchType")
	}
	return out.Response
}

// checkAddOnly asserts the patch only adds, and that an op without "/-" never targets a
// member the pod already has (which "add" would silently replace).
func checkAddOnly(t *testing.T, doc, patch []byte) {
	t.Helper()
	if len(patch) == 0 {
		return
	}
	var ops []struct{ Op, Path string }
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatalf("patch is not a JSON array: %v", err)
	}
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Errorf("patch has a %q operation at %s; only add is allowed", op.Op, op.Path)
		}
		if !strings.HasSuffix(op.Path, "/-") && pointerExists(root, op.Path) {
			t.Errorf("add at %s would replace an existing member", op.Path)
		}
	}
}

func pointerExists(v any, ptr string) bool {
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = n[tok]; !ok {
				return false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return false
			}
			v = n[i]
		default:
			return false
		}
	}
	return true
}

func applyOps(t testing.TB, doc, patch []byte) []byte {
	t.Helper()
	if len(patch) == 0 || string(patch) == "null" {
		return doc
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch %s: %v", patch, err)
	}
	return out
}

func readJSON(t testing.TB, path string) []byte {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return js
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func canonical(t testing.TB, js []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, v)
}

func toYAML(t testing.TB, js []byte) []byte {
	t.Helper()
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func warningsText(ws []string) string {
	if len(ws) == 0 {
		return ""
	}
	return strings.Join(ws, "\n") + "\n"
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (run go test -update to accept):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}
