package pod_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

func benchPod(b *testing.B) []byte {
	b.Helper()
	return readJSON(b, "testdata/benchmark/pod.yaml")
}

var benchSA = irsa.Object{Namespace: "production", Name: "s3-writer", Annotations: map[string]string{
	"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/S3WriterRole",
}}

// BenchmarkMutate measures the pure part: config from annotations, then the add operations.
func BenchmarkMutate(b *testing.B) {
	var p pod.Pod
	if err := json.Unmarshal(benchPod(b), &p); err != nil {
		b.Fatal(err)
	}
	d := irsa.NewDefaults()
	b.ReportAllocs()
	for b.Loop() {
		cfg, _, _ := irsa.ConfigFor(benchSA, irsa.Object{Namespace: p.Metadata.Namespace, Annotations: p.Metadata.Annotations, Labels: p.Metadata.Labels}, d)
		if ops, _ := pod.Mutate(&p.Spec, cfg, "/spec"); len(ops) == 0 {
			b.Fatal("no ops")
		}
	}
}

// BenchmarkHandle measures AdmissionReview bytes in to response bytes out: decode, look
// up the ServiceAccount, mutate, encode the patch and the review. No network, no TLS.
func BenchmarkHandle(b *testing.B) {
	body := review(b, benchPod(b))
	b.Logf("AdmissionReview: %d bytes", len(body))
	h := newTestHandler(irsa.NewDefaults(), benchSA)
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec.Body.Reset()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Body.String())
		}
	}
}
