package pod

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// ServiceAccounts finds a ServiceAccount's name, namespace and annotations. found is false
// when it does not exist; err reports trouble finding out.
type ServiceAccounts interface {
	ServiceAccount(ctx context.Context, namespace, name string) (sa irsa.Object, found bool, err error)
}

// Handler is the admission handler for pod creation. It never calls AWS and never denies:
// any trouble of its own admits the pod unchanged with a warning and a metric.
type Handler struct {
	Defaults           irsa.Defaults
	ServiceAccounts    ServiceAccounts
	ExcludedNamespaces admission.ExcludedNamespaces
	Metrics            *Metrics
	Log                logr.Logger
}

// WarningPrefix starts every admission warning, so users know which webhook said it.
const WarningPrefix = "irsa-webhook: "

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req *admission.Request[Pod]) *admissionv1.AdmissionResponse {
	resp, outcome := h.handle(ctx, req)
	h.Metrics.Mutations.WithLabelValues(string(outcome)).Inc()
	return resp
}

func (h *Handler) handle(ctx context.Context, req *admission.Request[Pod]) (*admissionv1.AdmissionResponse, Outcome) {
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		return admission.AllowWithWarnings(fmt.Sprintf(WarningPrefix+"only pod creation is handled, got %s %s/%s; admitted unchanged",
			req.Operation, req.Resource.Resource, req.SubResource)), OutcomeSkipped
	}
	if h.ExcludedNamespaces.Excludes(req.Namespace) {
		return admission.AllowWithWarnings(), OutcomeExcluded
	}
	if req.ObjectError != nil {
		return admission.AllowWithWarnings(WarningPrefix + "cannot decode the pod (" + req.ObjectError.Error() + "); admitted unchanged, no AWS credentials injected"), OutcomeError
	}
	p := &req.Object
	podObj := irsa.Object{Namespace: req.Namespace, Name: podName(p), Annotations: p.Metadata.Annotations, Labels: p.Metadata.Labels}
	if h.Defaults.SkipsPod(podObj.Labels) { // before the lookup: a skipped pod needs no ServiceAccount
		return admission.AllowWithWarnings(), OutcomeSkipped
	}
	spec := &p.Spec
	if err := CheckSize(spec); err != nil { // before anything loops over the containers
		return admission.AllowWithWarnings(WarningPrefix + err.Error() + "; admitted unchanged, no AWS credentials injected"), OutcomeTooManyContainers
	}
	if resp, canceled := checkContext(ctx); canceled {
		return resp, OutcomeCanceled
	}
	saName := ServiceAccountName(spec)
	sa, found, err := h.ServiceAccounts.ServiceAccount(ctx, req.Namespace, saName)
	switch {
	case err != nil:
		h.Log.Error(err, "service account lookup failed; pod admitted unchanged", "namespace", req.Namespace, "serviceAccount", saName)
		return admission.AllowWithWarnings(fmt.Sprintf(WarningPrefix+"could not look up serviceaccount %s/%s (%v); admitted without AWS credentials", req.Namespace, saName, err)), OutcomeError
	case !found:
		return admission.AllowWithWarnings(fmt.Sprintf(WarningPrefix+"serviceaccount %s/%s not found; admitted without AWS credentials", req.Namespace, saName)), OutcomeMissingServiceAccount
	}
	if resp, canceled := checkContext(ctx); canceled {
		return resp, OutcomeCanceled
	}
	cfg, decision, warnings := irsa.ConfigFor(sa, podObj, h.Defaults)
	for i, w := range warnings {
		warnings[i] = WarningPrefix + w
	}
	if decision != irsa.Inject {
		return admission.AllowWithWarnings(warnings...), outcomeOf(decision)
	}
	ops, mutateWarnings := Mutate(spec, cfg, "/spec")
	for _, w := range mutateWarnings {
		warnings = append(warnings, WarningPrefix+w)
	}
	if len(ops) == 0 {
		return admission.AllowWithWarnings(warnings...), OutcomeUnchanged
	}
	if resp, canceled := checkContext(ctx); canceled {
		return resp, OutcomeCanceled
	}
	patch, err := MarshalPatch(ops)
	if err != nil {
		return admission.AllowWithWarnings(WarningPrefix + "cannot encode the patch (" + err.Error() + "); admitted unchanged"), OutcomeError
	}
	resp := admission.AllowWithWarnings(warnings...)
	resp.Patch = patch
	return resp, OutcomeMutated
}

// checkContext answers for a request whose context has ended (the API server gave up, or
// the server is stopping): nobody waits for the answer, so no more work is spent on it.
func checkContext(ctx context.Context) (*admissionv1.AdmissionResponse, bool) {
	if err := ctx.Err(); err != nil {
		return admission.AllowWithWarnings(WarningPrefix + "request ended before an answer (" + err.Error() + "); admitted unchanged"), true
	}
	return nil, false
}

// ServiceAccountName is the pod's ServiceAccount: spec.serviceAccountName, else the
// deprecated spec.serviceAccount, else "default" (what the API server will assign).
func ServiceAccountName(spec *Spec) string {
	switch {
	case spec.ServiceAccountName != "":
		return spec.ServiceAccountName
	case spec.DeprecatedServiceAccount != "":
		return spec.DeprecatedServiceAccount
	}
	return "default"
}

func podName(p *Pod) string {
	if p.Metadata.Name != "" {
		return p.Metadata.Name
	}
	return p.Metadata.GenerateName + "*"
}
