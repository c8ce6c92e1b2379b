package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
)

// Result labels of irsa_webhook_admission_requests_total.
const (
	ResultAllowed    = "allowed"     // allowed, no patch
	ResultMutated    = "mutated"     // allowed with a patch
	ResultDenied     = "denied"      // denied by the handler (trust check in enforce mode)
	ResultBadRequest = "bad_request" // malformed HTTP request, answered 4xx
	ResultOverloaded = "overloaded"  // refused with 429: the request bodies in flight filled MaxBodyBytesInFlight
	ResultError      = "error"       // the response could not be written
)

// Metrics are the request-level metrics of every admission Server: how many requests, how
// they were answered, how long it took, how many handlers panicked. What a request meant
// (a pod's outcome, a trust check's verdict) is counted by its handler (pod.Metrics,
// serviceaccount.Metrics). controller-runtime's webhook server adds its generic per-path
// HTTP metrics beside them.
type Metrics struct {
	Requests *prometheus.CounterVec   // webhook, result
	Duration *prometheus.HistogramVec // webhook
	Panics   *prometheus.CounterVec   // webhook
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_admission_requests_total",
			Help: "Admission requests answered, by webhook and result.",
		}, []string{"webhook", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "irsa_webhook_admission_duration_seconds",
			Help: "Time from reading an admission request to writing its answer, by webhook.",
			// Sub-millisecond buckets: a pod admission normally takes tens of microseconds.
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"webhook"}),
		Panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_handler_panics_total",
			Help: "Handler panics recovered (answered by the webhook's internal-error policy: the pod webhook allows, a fail-closed trust check denies), by webhook.",
		}, []string{"webhook"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.Panics)
	}
	return m
}

func (m *Metrics) observe(webhook, result string, start time.Time) {
	m.Requests.WithLabelValues(webhook, result).Inc()
	m.Duration.WithLabelValues(webhook).Observe(time.Since(start).Seconds())
}

func resultOf(r *admissionv1.AdmissionResponse) string {
	switch {
	case !r.Allowed:
		return ResultDenied
	case len(r.Patch) > 0:
		return ResultMutated
	}
	return ResultAllowed
}
