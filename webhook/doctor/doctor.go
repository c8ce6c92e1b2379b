// Package doctor explains why a pod does (or would) not get AWS credentials through IRSA:
// an ordered checklist over facts gathered from the cluster and from AWS, each check
// ✓ (ok), ✗ (a definite problem, with the one fix) or ? (could not be verified). It is pure:
// the irsa-webhook doctor command gathers the Facts (Kubernetes and AWS calls, each with a
// deadline) and prints the Report.
//
// The checks follow the path of a credential: the webhook must see the pod, the pod must run
// as a ServiceAccount naming a valid role, the pod must carry what the webhook injects (a pod
// created before the annotation does not: "restart it", the most common IRSA mistake), the
// cluster's issuer must be an IAM OIDC provider with the token's audience among its client
// IDs (else STS answers InvalidIdentityToken), the role's trust policy must trust the
// ServiceAccount (else AccessDenied from STS) and, when asked, the role's permissions must
// allow the action (else AccessDenied from the service).
package doctor

import (
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// Status is a check's outcome.
type Status string

const (
	OK      Status = "ok"      // ✓
	Fail    Status = "fail"    // ✗ a definite problem; Fix says what to do
	Unknown Status = "unknown" // ? could not be verified; Message says why
)

// Symbol is the checklist mark of a status.
func (s Status) Symbol() string {
	switch s {
	case OK:
		return "✓"
	case Fail:
		return "✗"
	}
	return "?"
}

// Check names, in the order of the checklist.
const (
	CheckWebhookCovers   = "webhook-covers"
	CheckWebhookAnswers  = "webhook-answers"
	CheckServiceAccount  = "service-account"
	CheckInjection       = "injection"
	CheckOIDCProvider    = "oidc-provider"
	CheckAudience        = "oidc-audience"
	CheckTrustPolicy     = "trust-policy"
	CheckPermission      = "permission"
	exitAllGood          = 0
	exitProblem          = 1
	exitUnverifiable     = 3
	maxListedAlternative = 5 // annotated ServiceAccounts named in a fix, at most
)

// Check is one line of the checklist.
type Check struct {
	Name    string `json:"check"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Report is the checklist for one pod or ServiceAccount.
type Report struct {
	Target string  `json:"target"` // "pod NS/NAME" or "serviceaccount NS/NAME"
	Result Status  `json:"result"`
	Checks []Check `json:"checks"`
}

// ExitCode is 0 when every check passed, 1 when one found a problem, else 3 when one could
// not be verified.
func (r Report) ExitCode() int {
	switch r.Result {
	case OK:
		return exitAllGood
	case Fail:
		return exitProblem
	}
	return exitUnverifiable
}

// Webhook is one mutating webhook as registered, and whether it answered.
type Webhook struct {
	Configuration     string // the MutatingWebhookConfiguration's name
	Name              string
	Rules             []admissionregistrationv1.RuleWithOperations
	NamespaceSelector *metav1.LabelSelector
	ObjectSelector    *metav1.LabelSelector
	Target            string // the URL, or "service NS/NAME:PORT"
	AnswerErr         error  // nil: it answered (a TLS request, or ready endpoints)
	AnswerDefinite    bool   // AnswerErr is a definite failure (no ready endpoints), not "cannot reach it from here"
}

// Provider is the IAM OIDC provider registered for the cluster's issuer.
type Provider struct {
	ARN       string
	ClientIDs []string
}

// Simulation is IAM's answer to SimulatePrincipalPolicy for the role.
type Simulation struct {
	Action, Resource string
	Decision         string   // allowed, explicitDeny, implicitDeny
	MatchedPolicies  []string // the policies whose statements decided it
	Err              error
}

// Facts is what the command gathered. A nil pointer or empty value with a nil error means
// "not there"; an error means "could not find out".
type Facts struct {
	Namespace       string
	NamespaceLabels map[string]string
	NamespaceErr    error

	Pod *corev1.Pod // nil when diagnosing a ServiceAccount

	ServiceAccountName string
	ServiceAccount     *corev1.ServiceAccount // nil: it does not exist
	ServiceAccountErr  error
	// ServiceAccountChanged is the last time any manager wrote the ServiceAccount (from its
	// managedFields); zero if unknown.
	ServiceAccountChanged time.Time
	// Annotated are the namespace's ServiceAccounts that name a role, for the fix of a pod
	// running as one that does not.
	Annotated []string

	Defaults    irsa.Defaults
	Webhooks    []Webhook
	WebhooksErr error

	Issuer    string
	IssuerErr error

	// CallerAccount is the AWS account of the credentials used (whose OIDC providers were
	// listed); "" with CallerErr if STS could not tell.
	CallerAccount string
	CallerErr     error
	Provider      *Provider // nil with nil ProviderErr: no provider for the issuer
	ProviderErr   error

	Trust      *serviceaccount.Verdict // nil: not checked
	Simulation *Simulation             // nil: no --action asked
}
