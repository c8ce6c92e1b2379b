package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
)

const validReview = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns","operation":"CREATE","userInfo":{},"object":{"apiVersion":"v1","kind":"Pod"}}}`

type raw = json.RawMessage

func allow(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
	return admission.AllowWithWarnings()
}

func TestServeHTTPBadRequests(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantMessage string
	}{
		{"get method", http.MethodGet, "application/json", validReview, http.StatusMethodNotAllowed, "method GET not allowed"},
		{"wrong content type", http.MethodPost, "text/plain", validReview, http.StatusUnsupportedMediaType, `content type "text/plain" not supported`},
		{"no content type", http.MethodPost, "", validReview, http.StatusUnsupportedMediaType, "want application/json"},
		{"empty body", http.MethodPost, "application/json", "", http.StatusBadRequest, "request body is empty"},
		{"not json", http.MethodPost, "application/json", "hello", http.StatusBadRequest, "decode AdmissionReview"},
		{"json array", http.MethodPost, "application/json", "[]", http.StatusBadRequest, "decode AdmissionReview"},
		{"truncated json", http.MethodPost, "application/json", validReview[:40], http.StatusBadRequest, "decode AdmissionReview"},
		{"no request", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest, "request is missing"},
		{"unknown version", http.MethodPost, "application/json", strings.Replace(validReview, "admission.k8s.io/v1", "admission.k8s.io/v2", 1), http.StatusBadRequest, "want admission.k8s.io/v1 or admission.k8s.io/v1beta1 AdmissionReview"},
		{"other group", http.MethodPost, "application/json", strings.Replace(validReview, "admission.k8s.io/v1", "example.com/v1beta1", 1), http.StatusBadRequest, "want admission.k8s.io/v1 or admission.k8s.io/v1beta1 AdmissionReview"},
		{"wrong kind", http.MethodPost, "application/json", strings.Replace(validReview, `"kind":"AdmissionReview"`, `"kind":"Pod"`, 1), http.StatusBadRequest, "want admission.k8s.io/v1 or admission.k8s.io/v1beta1 AdmissionReview"},
		{"v1beta1 without uid", http.MethodPost, "application/json", strings.Replace(strings.Replace(validReview, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1), `"uid":"u-1",`, "", 1), http.StatusBadRequest, "request.uid is missing"},
		{"v1beta1 over the size limit", http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","x":"` + strings.Repeat("a", admission.MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, "exceeds"},
		{"no uid", http.MethodPost, "application/json", strings.Replace(validReview, `"uid":"u-1",`, "", 1), http.StatusBadRequest, "request.uid is missing"},
		{"over the size limit", http.MethodPost, "application/json", `{"x":"` + strings.Repeat("a", admission.MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := admission.NewMetrics(nil)
			s := admission.NewServer("pod", admission.HandlerFunc[raw](allow), logr.Discard(), m)
			req := httptest.NewRequest(tc.method, "/mutate-v1-pod", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d (body %q)", rec.Code, tc.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.wantMessage) {
				t.Errorf("body %q does not say %q", rec.Body, tc.wantMessage)
			}
			if got := testutil.ToFloat64(m.Requests.WithLabelValues("pod", admission.ResultBadRequest)); got != 1 {
				t.Errorf("bad_request metric = %v, want 1", got)
			}
		})
	}
}

func TestServeHTTPAnswers(t *testing.T) {
	patch := []byte(`[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`)
	tests := []struct {
		name        string
		handler     admission.HandlerFunc[raw]
		contentType string
		wantAllowed bool
		wantPatch   bool
		wantWarning string
		wantResult  string
	}{
		{"allowed", allow, "application/json", true, false, "", admission.ResultAllowed},
		{"content type with charset", allow, "application/json; charset=utf-8", true, false, "", admission.ResultAllowed},
		{"mutated", func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
			r := admission.AllowWithWarnings("w")
			r.Patch = patch
			return r
		}, "application/json", true, true, "w", admission.ResultMutated},
		{"denied", func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
			return admission.Deny(http.StatusForbidden, "Forbidden", "no")
		}, "application/json", false, false, "", admission.ResultDenied},
		{"panic is allowed with a warning", func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
			panic("boom")
		}, "application/json", true, false, "internal error", admission.ResultAllowed},
		{"nil answer is allowed with a warning", func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
			return nil
		}, "application/json", true, false, "internal error", admission.ResultAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := admission.NewMetrics(nil)
			s := admission.NewServer[raw]("pod", tc.handler, logr.Discard(), m)
			req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader([]byte(validReview)))
			req.Header.Set("Content-Type", tc.contentType)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if r == nil || r.UID != "u-1" || out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" {
				t.Fatalf("malformed answer %s", rec.Body)
			}
			if r.Allowed != tc.wantAllowed {
				t.Errorf("allowed = %v, want %v", r.Allowed, tc.wantAllowed)
			}
			if gotPatch := len(r.Patch) > 0; gotPatch != tc.wantPatch || (gotPatch && (r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch)) {
				t.Errorf("patch = %s (type %v), want patch %v", r.Patch, r.PatchType, tc.wantPatch)
			}
			if tc.wantWarning != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], tc.wantWarning)) {
				t.Errorf("warnings = %q, want one containing %q", r.Warnings, tc.wantWarning)
			}
			if got := testutil.ToFloat64(m.Requests.WithLabelValues("pod", tc.wantResult)); got != 1 {
				t.Errorf("metric result %s = %v, want 1", tc.wantResult, got)
			}
		})
	}
}

// TestServeHTTPReviewVersions: a review of either version the API server can send
// (admissionReviewVersions v1 or v1beta1, the latter as the reference webhook's deploy/
// registers it) is answered in the version asked, with the request's UID and the patch.
func TestServeHTTPReviewVersions(t *testing.T) {
	patch := []byte(`[{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`)
	mutate := admission.HandlerFunc[raw](func(_ context.Context, req *admission.Request[raw]) *admissionv1.AdmissionResponse {
		r := admission.AllowWithWarnings("w")
		if req.Namespace == "ns" && req.Operation == admissionv1.Create {
			r.Patch = patch
		}
		return r
	})
	for _, version := range []string{"admission.k8s.io/v1", "admission.k8s.io/v1beta1"} {
		t.Run(version, func(t *testing.T) {
			m := admission.NewMetrics(nil)
			s := admission.NewServer("pod", mutate, logr.Discard(), m)
			body := strings.Replace(validReview, `"apiVersion":"admission.k8s.io/v1"`, `"apiVersion":"`+version+`"`, 1)
			req := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			// Both versions share the JSON shape of the review and its response.
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if out.APIVersion != version || out.Kind != "AdmissionReview" {
				t.Errorf("answered as %s %s, want %s AdmissionReview", out.APIVersion, out.Kind, version)
			}
			r := out.Response
			if r == nil || r.UID != "u-1" || !r.Allowed {
				t.Fatalf("malformed answer %s", rec.Body)
			}
			if string(r.Patch) != string(patch) || r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Errorf("patch = %s (type %v), want %s as JSONPatch", r.Patch, r.PatchType, patch)
			}
			if len(r.Warnings) != 1 || r.Warnings[0] != "w" {
				t.Errorf("warnings = %q, want [w]", r.Warnings)
			}
			if got := testutil.ToFloat64(m.Requests.WithLabelValues("pod", admission.ResultMutated)); got != 1 {
				t.Errorf("mutated metric = %v, want 1", got)
			}
		})
	}
}

// TestInternalErrorPolicy: a panic or a missing answer is answered by the server's policy:
// admitted by default (pods), denied with a 500 for a check that fails closed.
func TestInternalErrorPolicy(t *testing.T) {
	panics := func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse { panic("boom") }
	silent := func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse { return nil }
	tests := []struct {
		name        string
		policy      *admission.OnInternalError // nil: NewServer's default
		handler     admission.HandlerFunc[raw]
		wantAllowed bool
		wantPanics  float64
	}{
		{name: "default admits a panic", handler: panics, wantAllowed: true, wantPanics: 1},
		{name: "default admits no answer", handler: silent, wantAllowed: true},
		{name: "admit policy admits a panic", policy: ptr(admission.AdmitOnInternalError), handler: panics, wantAllowed: true, wantPanics: 1},
		{name: "deny policy denies a panic", policy: ptr(admission.DenyOnInternalError), handler: panics, wantAllowed: false, wantPanics: 1},
		{name: "deny policy denies no answer", policy: ptr(admission.DenyOnInternalError), handler: silent, wantAllowed: false},
		{name: "deny policy leaves real answers alone", policy: ptr(admission.DenyOnInternalError), handler: allow, wantAllowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := admission.NewMetrics(nil)
			s := admission.NewServer[raw]("serviceaccount", tc.handler, logr.Discard(), m)
			if tc.policy != nil {
				s.SetOnInternalError(*tc.policy)
			}
			req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader([]byte(validReview)))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
				t.Fatalf("status %d, malformed answer %s: %v", rec.Code, rec.Body, err)
			}
			r := out.Response
			if r.Allowed != tc.wantAllowed {
				t.Fatalf("allowed = %v, want %v (%s)", r.Allowed, tc.wantAllowed, rec.Body)
			}
			if !r.Allowed && (r.Result == nil || r.Result.Code != http.StatusInternalServerError || !strings.Contains(r.Result.Message, "internal error")) {
				t.Errorf("denial does not say internal error with code 500: %+v", r.Result)
			}
			if got := testutil.ToFloat64(m.Panics.WithLabelValues("serviceaccount")); got != tc.wantPanics {
				t.Errorf("panics metric = %v, want %v", got, tc.wantPanics)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestWarningsAreBounded(t *testing.T) {
	long := strings.Repeat("é", 1000) // 2,000 bytes of two-byte runes
	var many []string
	for range 20 {
		many = append(many, "w")
	}
	tests := []struct {
		name      string
		warnings  []string
		wantCount int
	}{
		{"one long warning", []string{long}, 1},
		{"many warnings", many, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := admission.HandlerFunc[raw](func(context.Context, *admission.Request[raw]) *admissionv1.AdmissionResponse {
				return admission.AllowWithWarnings(tc.warnings...)
			})
			s := admission.NewServer[raw]("pod", h, logr.Discard(), admission.NewMetrics(nil))
			req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", strings.NewReader(validReview))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			ws := out.Response.Warnings
			if len(ws) != tc.wantCount {
				t.Fatalf("%d warnings, want %d", len(ws), tc.wantCount)
			}
			for _, w := range ws {
				if len(w) > 520 || !utf8.ValidString(w) {
					t.Errorf("warning of %d bytes (valid UTF-8: %v)", len(w), utf8.ValidString(w))
				}
			}
		})
	}
}

// object is what a test handler reads from a request's object.
type object struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// TestDecodeReviewChoices pins what the decoder accepts beyond the API server's own
// output: field names match exactly (as the API server's decoder matches them), while a
// duplicate name or invalid UTF-8 is taken as encoding/json v1 took it, never refused.
func TestDecodeReviewChoices(t *testing.T) {
	withObject := func(obj string) string {
		return strings.Replace(validReview, `"object":{"apiVersion":"v1","kind":"Pod"}`, `"object":`+obj, 1)
	}
	tests := []struct {
		name      string
		body      string
		wantErr   string // empty: decodes
		wantUID   string
		wantName  string
		objectErr bool
	}{
		{"plain", withObject(`{"metadata":{"name":"p"}}`), "", "u-1", "p", false},
		{"duplicate name: the last wins", withObject(`{"metadata":{"name":"a","name":"b"}}`), "", "u-1", "b", false},
		{"duplicate envelope field", strings.Replace(validReview, `"uid":"u-1"`, `"uid":"u-0","uid":"u-1"`, 1), "", "u-1", "", false},
		{"invalid UTF-8 is replaced", withObject("{\"metadata\":{\"name\":\"p\xff\"}}"), "", "u-1", "p\uFFFD", false},
		{"names are case-sensitive: Metadata is not metadata", withObject(`{"Metadata":{"name":"p"}}`), "", "u-1", "", false},
		{"names are case-sensitive: UID is not uid", strings.Replace(validReview, `"uid"`, `"UID"`, 1), "request.uid is missing", "", "", false},
		{"an object of the wrong shape is the handler's to judge", withObject(`{"metadata":{"name":7}}`), "", "u-1", "", true},
		{"trailing garbage", validReview + "x", "decode AdmissionReview", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rv, err := admission.DecodeReview[object]([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(rv.Request.UID); got != tc.wantUID {
				t.Errorf("uid = %q, want %q", got, tc.wantUID)
			}
			if got := rv.Request.Object.Metadata.Name; got != tc.wantName {
				t.Errorf("object name = %q, want %q", got, tc.wantName)
			}
			if (rv.Request.ObjectError != nil) != tc.objectErr {
				t.Errorf("object error = %v, want an error: %v", rv.Request.ObjectError, tc.objectErr)
			}
		})
	}
}
