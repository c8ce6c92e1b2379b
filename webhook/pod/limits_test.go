package pod_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// hostilePod is a pod etcd would refuse but mutating admission still sees: containers
// containers and a skip-containers annotation of skipNames names that match none of them.
func hostilePod(containers, skipNames int) []byte {
	var b strings.Builder
	b.WriteString(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"hostile","namespace":"production","annotations":{"eks.amazonaws.com/skip-containers":"`)
	for i := range skipNames {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("x" + strconv.FormatInt(int64(i), 36)) // short names, so a million fit the body cap
	}
	b.WriteString(`"}},"spec":{"serviceAccountName":"s3-writer","containers":[`)
	for i := range containers {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"c%d","image":"app:1"}`, i)
	}
	b.WriteString(`]}}`)
	return []byte(b.String())
}

// cpuTime is the CPU (user + system) this process has used: the handler's work and the
// garbage collection it causes, whatever goroutine or thread did it.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestHostilePodIsBounded sends pods that cost seconds of CPU or megabytes of patch before
// the limits (5,000 containers with a skip list of a million names; 30,000 containers):
// each is admitted unchanged with a warning, within a CPU budget (process CPU time, not
// wall-clock time, so a busy machine does not fail it; the budget is many times what it
// takes, and the old code took 11.7 s).
func TestHostilePodIsBounded(t *testing.T) {
	const budget = 200 * time.Millisecond
	tests := []struct {
		name              string
		containers, names int
	}{
		{name: "5000 containers, a million skip names", containers: 5000, names: 1_000_000},
		{name: "30000 containers", containers: 30000},
		{name: "200 containers, a million skip names", containers: 200, names: 1_000_000},
	}
	h := newTestHandler(irsa.NewDefaults(), benchSA)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := review(t, hostilePod(tc.containers, tc.names))
			if len(body) > admission.MaxBodyBytes {
				t.Fatalf("review of %d bytes is over the body cap (%d): the handler would not even see it", len(body), admission.MaxBodyBytes)
			}
			const runs = 3
			var spent time.Duration
			for range runs {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, "/mutate-v1-pod", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				start := cpuTime(t)
				h.ServeHTTP(rec, req)
				spent += cpuTime(t) - start
				if rec.Code != http.StatusOK {
					t.Fatalf("HTTP %d: %.200s", rec.Code, rec.Body)
				}
				var out admissionv1.AdmissionReview
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
					t.Fatal(err)
				}
				if r := out.Response; !r.Allowed || len(r.Patch) != 0 || len(r.Warnings) != 1 {
					t.Fatalf("allowed %v, patch of %d bytes, warnings %.300q; want admitted unchanged with one warning", r.Allowed, len(r.Patch), r.Warnings)
				}
				if spent > runs*budget {
					break // already over: no need to spend more
				}
			}
			t.Logf("CPU per admission: %v", spent/runs)
			if spent/runs > budget {
				t.Errorf("CPU per admission %v, want under %v", spent/runs, budget)
			}
		})
	}
}
