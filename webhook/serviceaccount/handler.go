package serviceaccount

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// Mode is how the trust check answers admission.
type Mode string

const (
	// Off: no check (the webhook should not even be registered).
	Off Mode = "off"
	// Warn: always allowed; a mismatch or an unverified trust is an admission warning.
	Warn Mode = "warn"
	// Enforce: a role that does not trust the ServiceAccount is denied; an unverified
	// trust is allowed with a warning unless FailClosed.
	Enforce Mode = "enforce"
)

// Modes lists the valid modes, for flag validation.
var Modes = []Mode{Off, Warn, Enforce}

// Event reasons on the ServiceAccount.
const (
	ReasonMismatch   = "TrustPolicyMismatch"
	ReasonUnverified = "TrustPolicyUnverified"
	eventAction      = "CheckTrustPolicy"
)

// DefaultTimeout bounds one check: shorter than the webhook's timeoutSeconds (5 in the chart).
const DefaultTimeout = 3 * time.Second

// EventRecorder is the events.k8s.io recorder's method DeferredEvents uses.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Handler is the admission handler for ServiceAccount CREATE and UPDATE.
type Handler struct {
	Mode       Mode
	FailClosed bool          // enforce mode: deny when the trust cannot be verified
	Timeout    time.Duration // answer within this, whatever IAM does
	IssuerURL  string        // this cluster's service-account issuer
	Issuer     func() string // if set, replaces IssuerURL: the issuer known now ("" while discovery has not succeeded)
	Defaults   irsa.Defaults // annotation prefix, default audience, allowed accounts
	// ExcludedNamespaces are never checked: the same list and check as the pod webhook's.
	ExcludedNamespaces admission.ExcludedNamespaces
	// DetailedWarnings puts the full findings, which quote the trust policy's principals and
	// conditions, in warnings and Events (--trust-check-detailed-warnings). Off, they go to
	// the debug log only and the requester is told which of its own claims failed: with it
	// on, anyone who can create a ServiceAccount can read any role's trust policy, which only
	// a single-tenant cluster can accept.
	DetailedWarnings bool
	// Mapped, if set, returns the IRSA annotations that a mapping (the reference webhook's
	// ConfigMap, --watch-config-map) gives a ServiceAccount that names no role itself, and
	// the mapping's name; ok is false when it maps none. Such a ServiceAccount is checked when
	// it is created, or when its own role annotation is removed, and is never denied: the
	// mapping is the admin's, not the requester's.
	Mapped  func(namespace, name string) (annotations map[string]string, from string, ok bool)
	Source  TrustSource
	Events  EventSink // nil: no events
	Metrics *Metrics
	Log     logr.Logger
}

var saResource = metav1.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req *admission.Request[corev1.ServiceAccount]) *admissionv1.AdmissionResponse {
	if h.Mode == Off || req.Resource != saResource || req.SubResource != "" ||
		(req.Operation != admissionv1.Create && req.Operation != admissionv1.Update) {
		return admission.AllowWithWarnings()
	}
	if h.ExcludedNamespaces.Excludes(req.Namespace) {
		return admission.AllowWithWarnings()
	}
	if req.ObjectError != nil {
		msg := warningPrefix + "cannot decode the serviceaccount (" + req.ObjectError.Error() + "); trust not verified"
		if h.failsClosed() {
			return admission.Deny(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
		}
		return admission.AllowWithWarnings(msg)
	}
	sa := req.Object
	p := h.Defaults.AnnotationPrefix
	roleKey, audKey := irsa.Key(p, irsa.RoleARNAnnotation), irsa.Key(p, irsa.AudienceAnnotation)
	// The request's namespace, always: the API server makes the object's agree with it, a
	// direct POST need not.
	sa.Namespace = req.Namespace
	rawRole, hasRole := sa.Annotations[roleKey]
	checked, mappedBy := sa.Annotations, ""
	if !hasRole {
		ann, from, ok := h.mapped(req, roleKey)
		if !ok {
			return admission.AllowWithWarnings()
		}
		checked, mappedBy = ann, MappedBy(from, h.DetailedWarnings)
	} else if old := req.OldObject.Annotations; req.Operation == admissionv1.Update && old[roleKey] == rawRole && old[audKey] == sa.Annotations[audKey] {
		if _, had := old[roleKey]; had {
			return admission.AllowWithWarnings() // nothing the trust depends on changed
		}
	}
	v := h.verify(ctx, irsa.Object{Namespace: sa.Namespace, Name: sa.Name, Annotations: checked})
	h.Metrics.Observe(v)
	if h.Events != nil && !req.IsDryRun() && v.Result != trustpolicy.Trusted {
		reason := ReasonUnverified
		if v.Result == trustpolicy.NotTrusted {
			reason = ReasonMismatch
		}
		// Written in the request's namespace, once the object is stored (see DeferredEvents).
		h.Events.Record(Event{Namespace: sa.Namespace, Name: sa.Name, UID: sa.UID, Checked: checkedAnnotations(sa.Annotations, roleKey, audKey),
			Type: corev1.EventTypeWarning, Reason: reason, Note: mappedBy + h.message(v)})
	}
	if v.Result != trustpolicy.Trusted {
		h.Log.V(1).Info("trust check failed", "namespace", sa.Namespace, "serviceAccount", sa.Name, "roleArn", truncate(v.RoleARN, 256), "verdict", v.Result.String(),
			"findings", truncate(strings.Join(v.Reasons, "; "), maxLogFindings))
	} else if len(v.Reasons) > 0 {
		h.Log.V(1).Info("trust check passed with findings", "namespace", sa.Namespace, "serviceAccount", sa.Name, "roleArn", truncate(v.RoleARN, 256),
			"findings", truncate(strings.Join(v.Reasons, "; "), maxLogFindings))
	}
	msg := warningPrefix + mappedBy + h.message(v)
	switch {
	case v.Result == trustpolicy.Trusted && len(v.Notes) == 0 && (len(v.Reasons) == 0 || !h.DetailedWarnings):
		return admission.AllowWithWarnings() // what is broad about the policy is the admin's business
	case v.Result == trustpolicy.Trusted, mappedBy != "":
		return admission.AllowWithWarnings(msg)
	case v.Result == trustpolicy.NotTrusted && h.Mode == Enforce, h.failsClosed():
		return admission.Deny(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
	case h.Mode == Enforce:
		// Enforce admits what it could not verify (not fail-closed); it must say so, or an
		// outage would look like a pass.
		return admission.AllowWithWarnings(msg + "; " + admittedUnverified)
	}
	return admission.AllowWithWarnings(msg)
}

// mapped returns the annotations a mapping gives the ServiceAccount of req, which names no
// role itself, when that is new: at its creation, or when an update removed its own role
// annotation (the mapping takes over). Mapping edits are checked by package mappingcheck.
func (h *Handler) mapped(req *admission.Request[corev1.ServiceAccount], roleKey string) (map[string]string, string, bool) {
	if h.Mapped == nil {
		return nil, "", false
	}
	if req.Operation == admissionv1.Update {
		if _, had := req.OldObject.Annotations[roleKey]; !had {
			return nil, "", false
		}
	}
	return h.Mapped(req.Namespace, req.Object.Name)
}

// failsClosed: enforce mode with --trust-check-fail-closed denies whatever it cannot verify.
func (h *Handler) failsClosed() bool { return h.Mode == Enforce && h.FailClosed }

// OnInternalError is the admission server's answer to a panic of this handler: denied
// when the check fails closed, else admitted like everything else it cannot verify.
func (h *Handler) OnInternalError() admission.OnInternalError {
	if h.failsClosed() {
		return admission.DenyOnInternalError
	}
	return admission.AdmitOnInternalError
}

// verify runs the check within the handler's deadline, on the role and audience the pod
// path would inject (CheckServiceAccount).
func (h *Handler) verify(ctx context.Context, sa irsa.Object) Verdict {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	issuer := h.IssuerURL
	if h.Issuer != nil {
		issuer = h.Issuer()
	}
	v, _ := CheckServiceAccount(ctx, h.Source, issuer, sa, h.Defaults)
	return v
}

const warningPrefix = "irsa-webhook: "

// admittedUnverified ends an enforce-mode warning for a trust that could not be verified.
const admittedUnverified = "admitted unverified (enforce mode denies only a verified mismatch unless --trust-check-fail-closed)"

// message is what the requester reads in a warning, a denial or an Event: the verdict and
// its own failed claims (Verdict.TenantSummary), or with DetailedWarnings every finding.
func (h *Handler) message(v Verdict) string {
	if h.DetailedWarnings {
		return truncate(v.Summary(), maxMessage)
	}
	return truncate(v.TenantSummary(), maxMessage)
}

// maxLogFindings bounds the findings in one debug log line.
const maxLogFindings = 4000

// maxMessage bounds warnings and event notes (a policy can yield many findings, and the
// API server truncates long warnings anyway).
const maxMessage = 1000

// VerdictLabel is the metric and JSON label of a result: trusted, not_trusted, undetermined.
func VerdictLabel(r trustpolicy.Result) string {
	switch r {
	case trustpolicy.Trusted:
		return "trusted"
	case trustpolicy.NotTrusted:
		return "not_trusted"
	}
	return "undetermined"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// MappedBy opens the warning and the Event of a ServiceAccount whose role comes from the
// ConfigMap mapping (configMap is its namespace/name). The tenant is told that the role is
// mapped, not where the mapping lives (an object in the webhook's namespace that it cannot
// read), unless detailed warnings are on.
func MappedBy(configMap string, detailed bool) string {
	if detailed {
		return "mapped by ConfigMap " + configMap + ": "
	}
	return "mapped by the webhook's ConfigMap: "
}
