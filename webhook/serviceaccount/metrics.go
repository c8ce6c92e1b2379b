package serviceaccount

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

// Metrics are the trust check's own metrics; the request-level ones (count, result,
// duration, panics) are the admission Server's. The mapped-role checker
// (webhook/mappingcheck) counts its checks here too.
type Metrics struct {
	Checks *prometheus.CounterVec // verdict
	// RateLimited counts trust checks left undetermined because the webhook's own limit on
	// IAM calls was spent (also counted in Checks as undetermined).
	RateLimited prometheus.Counter
	// EventsDropped counts trust-check Events not written, by reason (DropNotStored,
	// DropQueueFull): see DeferredEvents.
	EventsDropped *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_trust_checks_total",
			Help: "ServiceAccount trust-policy checks by verdict: trusted, not_trusted, undetermined.",
		}, []string{"verdict"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "irsa_webhook_trust_checks_rate_limited_total",
			Help: "ServiceAccount trust checks left undetermined because the webhook's limit on IAM GetRole calls (--iam-rate-limit, --iam-rate-burst) was spent.",
		}),
		EventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_trust_events_dropped_total",
			Help: "Trust-check Events not written, by reason: not_stored (no ServiceAccount with the request's namespace, name and UID was stored in time), queue_full.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Checks, m.RateLimited, m.EventsDropped)
	}
	return m
}

// Observe counts one check's verdict.
func (m *Metrics) Observe(v Verdict) {
	m.Checks.WithLabelValues(VerdictLabel(v.Result)).Inc()
	if errors.Is(v.Err, awsiam.ErrRateLimited) {
		m.RateLimited.Inc()
	}
}
