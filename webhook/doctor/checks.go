package doctor

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Expected is what the ServiceAccount's annotations mean (irsa.ForServiceAccount, the
// webhook's own reading); ok is false when it names no role that would be injected. The
// command uses it to decide which AWS calls to make.
func Expected(f Facts) (s irsa.Settings, ok bool) {
	if f.ServiceAccount == nil {
		return irsa.Settings{}, false
	}
	s, decision, _ := irsa.ForServiceAccount(saObject(f.ServiceAccount), f.Defaults)
	return s, decision == irsa.Inject
}

func saObject(sa *corev1.ServiceAccount) irsa.Object {
	return irsa.Object{Namespace: sa.Namespace, Name: sa.Name, Annotations: sa.Annotations, Labels: sa.Labels}
}

// Evaluate turns the facts into the ordered checklist.
func Evaluate(f Facts) Report {
	r := Report{Target: "serviceaccount " + f.Namespace + "/" + f.ServiceAccountName}
	if f.Pod != nil {
		r.Target = "pod " + f.Namespace + "/" + f.Pod.Name
	}
	covers, answers := webhookChecks(f)
	r.Checks = append(r.Checks, covers, answers)
	settings, sa := serviceAccountCheck(f)
	r.Checks = append(r.Checks, sa)
	hasRole := sa.Status == OK
	if f.Pod != nil {
		r.Checks = append(r.Checks, injectionCheck(f, hasRole, covers.Status == OK))
	}
	r.Checks = append(r.Checks, awsChecks(f, settings, hasRole)...)
	r.Result = OK
	for _, c := range r.Checks {
		switch {
		case c.Status == Fail:
			r.Result = Fail
		case c.Status == Unknown && r.Result == OK:
			r.Result = Unknown
		}
	}
	return r
}

// coversPodCreate reports whether the rules send pod CREATE requests to the webhook.
func coversPodCreate(rules []admissionregistrationv1.RuleWithOperations) bool {
	for _, r := range rules {
		op := slices.ContainsFunc(r.Operations, func(o admissionregistrationv1.OperationType) bool {
			return o == admissionregistrationv1.Create || o == admissionregistrationv1.OperationAll
		})
		scope := r.Scope == nil || *r.Scope != admissionregistrationv1.ClusterScope
		if op && scope && anyOf(r.APIGroups, "", "*") && anyOf(r.APIVersions, "v1", "*") && anyOf(r.Resources, "pods", "*") {
			return true
		}
	}
	return false
}

func anyOf(list []string, want ...string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return slices.Contains(want, s) })
}

// selects evaluates a webhook's label selector the way the API server does: nil matches
// everything.
func selects(sel *metav1.LabelSelector, set map[string]string) (bool, error) {
	if sel == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(set)), nil
}

func webhookChecks(f Facts) (covers, answers Check) {
	covers = Check{Name: CheckWebhookCovers}
	answers = Check{Name: CheckWebhookAnswers}
	notChecked := func(why string) Check {
		return Check{Name: CheckWebhookAnswers, Status: Unknown, Message: "not checked: " + why}
	}
	switch {
	case f.WebhooksErr != nil:
		covers.Status, covers.Message = Unknown, "cannot read the mutating webhook configurations: "+f.WebhooksErr.Error()
		return covers, notChecked("the webhook configurations are unknown")
	case f.NamespaceErr != nil:
		covers.Status, covers.Message = Unknown, "cannot read namespace "+f.Namespace+": "+f.NamespaceErr.Error()
		return covers, notChecked("the namespace's labels are unknown")
	}
	skipLabel := irsa.Key(f.Defaults.AnnotationPrefix, irsa.SkipPodLabel)
	if f.Pod != nil && f.Defaults.SkipsPod(f.Pod.Labels) {
		covers.Status = Fail
		covers.Message = fmt.Sprintf("pod %s/%s has the label %s: the webhook leaves it alone", f.Namespace, f.Pod.Name, skipLabel)
		covers.Fix = fmt.Sprintf("remove the label %s from the pod's template, then restart the pod", skipLabel)
		return covers, notChecked("the pod is skipped")
	}
	var candidates []Webhook
	for _, w := range f.Webhooks {
		if coversPodCreate(w.Rules) {
			candidates = append(candidates, w)
		}
	}
	if len(candidates) == 0 {
		covers.Status = Fail
		covers.Message = "no IRSA mutating webhook is registered for pod CREATE"
		covers.Fix = "install the webhook (helm install irsa-webhook deploy/charts/irsa-webhook), or pass --webhook-name with the name of yours"
		return covers, notChecked("no webhook is registered")
	}
	var why []string
	for _, w := range candidates {
		nsOK, err := selects(w.NamespaceSelector, f.NamespaceLabels)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: invalid namespaceSelector: %v", w.Name, err))
			continue
		}
		if !nsOK {
			why = append(why, fmt.Sprintf("%s: its namespaceSelector %s does not match namespace %s (labels %s)", w.Name, metav1.FormatLabelSelector(w.NamespaceSelector), f.Namespace, labels.Set(f.NamespaceLabels)))
			continue
		}
		if f.Pod != nil {
			objOK, err := selects(w.ObjectSelector, f.Pod.Labels)
			if err != nil || !objOK {
				why = append(why, fmt.Sprintf("%s: its objectSelector %s does not match the pod's labels %s", w.Name, metav1.FormatLabelSelector(w.ObjectSelector), labels.Set(f.Pod.Labels)))
				continue
			}
		}
		covers.Status = OK
		covers.Message = fmt.Sprintf("webhook %s (configuration %s) handles pod CREATE in namespace %s", w.Name, w.Configuration, f.Namespace)
		answers.Message = "webhook " + w.Name + " at " + w.Target
		switch {
		case w.AnswerErr == nil:
			answers.Status, answers.Message = OK, answers.Message+" answers"
		case w.AnswerDefinite:
			answers.Status, answers.Message = Fail, answers.Message+" does not answer: "+w.AnswerErr.Error()
			answers.Fix = "start the webhook's pods (kubectl -n <webhook namespace> get deploy,pods,endpointslices) and check their readiness"
		default:
			answers.Status, answers.Message = Unknown, answers.Message+" cannot be reached from here: "+w.AnswerErr.Error()
		}
		return covers, answers
	}
	covers.Status = Fail
	covers.Message = "no IRSA webhook covers this pod: " + strings.Join(why, "; ")
	covers.Fix = "make the namespace's (or pod's) labels match the webhook's selectors (see the chart's namespaceSelector / objectSelector values), then restart the pod"
	if f.Pod == nil {
		covers.Message = "no IRSA webhook covers namespace " + f.Namespace + ": " + strings.Join(why, "; ")
		covers.Fix = "make the namespace's labels match the webhook's namespaceSelector (see the chart's values), then restart its pods"
	}
	return covers, notChecked("it does not cover this " + map[bool]string{true: "pod", false: "namespace"}[f.Pod != nil])
}

func serviceAccountCheck(f Facts) (irsa.Settings, Check) {
	c := Check{Name: CheckServiceAccount}
	ref := f.Namespace + "/" + f.ServiceAccountName
	roleKey := irsa.Key(f.Defaults.AnnotationPrefix, irsa.RoleARNAnnotation)
	switch {
	case f.ServiceAccountErr != nil:
		c.Status, c.Message = Unknown, "cannot read serviceaccount "+ref+": "+f.ServiceAccountErr.Error()
		return irsa.Settings{}, c
	case f.ServiceAccount == nil:
		c.Status, c.Message = Fail, "serviceaccount "+ref+" does not exist"
		c.Fix = fmt.Sprintf("create it: kubectl -n %s create serviceaccount %s, annotated with %s", f.Namespace, f.ServiceAccountName, roleKey)
		return irsa.Settings{}, c
	}
	s, decision, warnings := irsa.ForServiceAccount(saObject(f.ServiceAccount), f.Defaults)
	who := "serviceaccount " + ref
	if f.Pod != nil {
		who = fmt.Sprintf("pod %s/%s runs as serviceaccount %s, which", f.Namespace, f.Pod.Name, f.ServiceAccountName)
	}
	switch decision {
	case irsa.NoRole:
		c.Status, c.Message = Fail, who+" names no IAM role (annotation "+roleKey+"): no credentials (the SDK says NoCredentialProviders)"
		c.Fix = fmt.Sprintf("annotate it: kubectl -n %s annotate serviceaccount %s %s=arn:aws:iam::<account>:role/<name>", f.Namespace, f.ServiceAccountName, roleKey)
		if others := slices.DeleteFunc(slices.Clone(f.Annotated), func(n string) bool { return n == f.ServiceAccountName }); f.Pod != nil && len(others) > 0 {
			if len(others) > maxListedAlternative {
				others = append(others[:maxListedAlternative], "…")
			}
			c.Fix = "set the pod's serviceAccountName to the ServiceAccount that names the role (" + strings.Join(others, ", ") + " in this namespace), or " + c.Fix
		}
	case irsa.InvalidAnnotation, irsa.RoleNotComposed:
		c.Status, c.Message = Fail, strings.Join(warnings, "; ")
		c.Fix = fmt.Sprintf("set %s to a role ARN such as arn:aws:iam::123456789012:role/MyRole", roleKey)
	default:
		c.Status, c.Message = OK, fmt.Sprintf("%s names role %s (audience %q, token lifetime %ds)", who, s.RoleARN, s.Audience, s.ExpirationSeconds)
		if len(warnings) > 0 {
			c.Message += "; " + strings.Join(warnings, "; ")
		}
	}
	return s, c
}

// injectionCheck compares what the pod carries with what the webhook would inject now.
func injectionCheck(f Facts, hasRole, covered bool) Check {
	c := Check{Name: CheckInjection}
	if !hasRole {
		c.Status, c.Message = Unknown, "not checked: the ServiceAccount names no valid role"
		return c
	}
	p := f.Pod
	// What the webhook injects for this pod now; the skip label is left out (the coverage
	// check reports it) so that the comparison still has a role.
	cfg, _, _ := irsa.ConfigFor(saObject(f.ServiceAccount), irsa.Object{Namespace: p.Namespace, Name: p.Name, Annotations: p.Annotations}, f.Defaults)
	restart := fmt.Sprintf("restart it: kubectl -n %s delete pod %s (or kubectl rollout restart its Deployment); the webhook injects credentials only when a pod is created", p.Namespace, p.Name)
	got := injected(p, cfg)
	switch {
	case got.roleARN == "" || got.tokenFile == "" || got.volume == nil:
		c.Status = Fail
		c.Message = fmt.Sprintf("pod %s/%s has no %s, %s or token volume %s", p.Namespace, p.Name, irsa.EnvRoleARN, irsa.EnvWebIdentityTokenFile, irsa.VolumeName)
		switch {
		case !f.ServiceAccountChanged.IsZero() && p.CreationTimestamp.Time.Before(f.ServiceAccountChanged):
			c.Message += fmt.Sprintf(": it was created at %s, before its ServiceAccount was last changed (%s)", p.CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z"), f.ServiceAccountChanged.UTC().Format("2006-01-02T15:04:05Z"))
		case covered:
			c.Message += ": it was created before the ServiceAccount named the role, or while the webhook was not called"
		}
		c.Fix = restart
		if !covered {
			c.Fix = "fix the webhook's coverage (above), then " + restart
		}
	case got.roleARN != cfg.RoleARN:
		c.Status = Fail
		c.Message = fmt.Sprintf("pod %s/%s was given role %s at its creation, but its ServiceAccount now names %s", p.Namespace, p.Name, got.roleARN, cfg.RoleARN)
		c.Fix = restart
	case got.audience != cfg.Audience || got.expiration != cfg.ExpirationSeconds:
		c.Status = Fail
		c.Message = fmt.Sprintf("pod %s/%s's token has audience %q and lifetime %ds, but its ServiceAccount now asks for %q and %ds", p.Namespace, p.Name, got.audience, got.expiration, cfg.Audience, cfg.ExpirationSeconds)
		c.Fix = restart
	default:
		c.Status = OK
		c.Message = fmt.Sprintf("pod has %s=%s, %s=%s and the token volume (audience %q, lifetime %ds)", irsa.EnvRoleARN, got.roleARN, irsa.EnvWebIdentityTokenFile, got.tokenFile, got.audience, got.expiration)
	}
	return c
}

type injection struct {
	roleARN, tokenFile string
	volume             *corev1.Volume
	audience           string
	expiration         int64
}

// injected reads what the webhook put into the pod: the first container it did not skip
// that carries the variables, and the token volume.
func injected(p *corev1.Pod, cfg irsa.Config) injection {
	var in injection
	for _, ctr := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
		if cfg.Skips(ctr.Name) {
			continue
		}
		for _, e := range ctr.Env {
			switch e.Name {
			case irsa.EnvRoleARN:
				in.roleARN = e.Value
			case irsa.EnvWebIdentityTokenFile:
				in.tokenFile = e.Value
			}
		}
		if in.roleARN != "" {
			break
		}
	}
	for i, v := range p.Spec.Volumes {
		if v.Name != irsa.VolumeName || v.Projected == nil {
			continue
		}
		in.volume = &p.Spec.Volumes[i]
		for _, src := range v.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil {
				in.audience = t.Audience
				if t.ExpirationSeconds != nil {
					in.expiration = *t.ExpirationSeconds
				}
			}
		}
	}
	return in
}
