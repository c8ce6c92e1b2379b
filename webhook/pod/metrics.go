package pod

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Outcome says why a pod was, or was not, given credentials: the outcome label of
// irsa_webhook_pod_mutations_total.
type Outcome string

// Outcomes.
const (
	OutcomeMutated               Outcome = "mutated"
	OutcomeUnchanged             Outcome = "unchanged" // had a role, but everything was already there
	OutcomeNoRole                Outcome = "no_role"
	OutcomeSkipped               Outcome = "skipped"
	OutcomeMissingServiceAccount Outcome = "missing_service_account"
	OutcomeInvalidAnnotation     Outcome = "invalid_annotation"
	OutcomeRoleNotComposed       Outcome = "role_not_composed" // --compose-role-arn: the webhook's AWS account is not known yet
	OutcomeExcluded              Outcome = "excluded_namespace"
	OutcomeTooManyContainers     Outcome = "too_many_containers" // more than irsa.MaxContainers: admitted unchanged
	OutcomeCanceled              Outcome = "canceled"            // the request's context ended first
	OutcomeError                 Outcome = "error"
)

// outcomeOf is the outcome of a pod the configuration decided to leave alone, or to
// mutate.
func outcomeOf(d irsa.Decision) Outcome {
	switch d {
	case irsa.Inject:
		return OutcomeMutated
	case irsa.NoRole:
		return OutcomeNoRole
	case irsa.InvalidAnnotation:
		return OutcomeInvalidAnnotation
	case irsa.Skipped:
		return OutcomeSkipped
	case irsa.RoleNotComposed:
		return OutcomeRoleNotComposed
	}
	return OutcomeError
}

// Metrics are the pod handler's own metrics; the request-level ones (count, result,
// duration, panics) are the admission Server's.
type Metrics struct {
	Mutations *prometheus.CounterVec // outcome
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Mutations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_pod_mutations_total",
			Help: "Pod admissions by outcome: mutated, unchanged, no_role, skipped, missing_service_account, invalid_annotation, role_not_composed (--compose-role-arn: the webhook's AWS account is not known yet), excluded_namespace, too_many_containers, canceled, error.",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Mutations)
	}
	return m
}
