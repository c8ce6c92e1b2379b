package doctor

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	role   = "arn:aws:iam::123456789012:role/S3WriterRole"
	issuer = "https://oidc.example.test/id/X"
)

var roleKey = irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)

func exp(v int64) *int64 { return &v }

// goodFacts is a pod that gets credentials and can use them.
func goodFacts() Facts {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "production", CreationTimestamp: metav1.NewTime(created)},
		Spec: corev1.PodSpec{
			ServiceAccountName: "s3-writer",
			Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{
				{Name: irsa.EnvRoleARN, Value: role}, {Name: irsa.EnvWebIdentityTokenFile, Value: "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
			}}},
			Volumes: []corev1.Volume{{Name: irsa.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "sts.amazonaws.com", ExpirationSeconds: exp(86400), Path: "token"}}},
			}}}},
		},
	}
	op := admissionregistrationv1.Create
	return Facts{
		Namespace: "production", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "production"},
		Pod:                   pod,
		ServiceAccountName:    "s3-writer",
		ServiceAccount:        &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "s3-writer", Namespace: "production", Annotations: map[string]string{roleKey: role}}},
		ServiceAccountChanged: created.Add(-time.Hour),
		Annotated:             []string{"s3-writer"},
		Defaults:              irsa.NewDefaults(),
		Webhooks: []Webhook{{Configuration: "irsa", Name: "pod.irsa-webhook.io", Target: "https://x",
			Rules:             []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{op}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}}}},
			ObjectSelector:    &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel), Operator: metav1.LabelSelectorOpDoesNotExist}}},
		}},
		Issuer: issuer, CallerAccount: "123456789012",
		Provider:   &Provider{ARN: "arn:aws:iam::123456789012:oidc-provider/oidc.example.test/id/X", ClientIDs: []string{"sts.amazonaws.com"}},
		Trust:      &serviceaccount.Verdict{Result: trustpolicy.Trusted, RoleARN: role, Subject: "system:serviceaccount:production:s3-writer", Audience: "sts.amazonaws.com"},
		Simulation: &Simulation{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/*", Decision: DecisionAllowed, MatchedPolicies: []string{"uploads"}},
	}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name       string
		change     func(f *Facts)
		wantFailed []string
		wantCode   int
		wantFix    string // in the first failed check's fix
		// wantMessage are in the failed checks' messages, in order: the claim named in the
		// trust check's words (serviceaccount.Verdict.Describe) and STS's answer.
		wantMessage []string
	}{
		{name: "all good", change: func(*Facts) {}, wantCode: 0},
		{name: "serviceaccount diagnosis has no injection check", change: func(f *Facts) { f.Pod = nil }, wantCode: 0},
		{name: "namespace not selected", change: func(f *Facts) { f.NamespaceLabels["kubernetes.io/metadata.name"] = "kube-system" },
			wantFailed: []string{CheckWebhookCovers}, wantCode: 1, wantFix: "namespaceSelector"},
		{name: "no webhook for pod CREATE", change: func(f *Facts) {
			f.Webhooks[0].Rules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Update}
		},
			wantFailed: []string{CheckWebhookCovers}, wantCode: 1, wantFix: "install the webhook"},
		{name: "skip label", change: func(f *Facts) {
			f.Pod.Labels = map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel): "true"}
		},
			wantFailed: []string{CheckWebhookCovers}, wantCode: 1, wantFix: "remove the label"},
		{name: "service without ready endpoints", change: func(f *Facts) {
			f.Webhooks[0].AnswerErr, f.Webhooks[0].AnswerDefinite = errors.New("no ready endpoints"), true
		},
			wantFailed: []string{CheckWebhookAnswers}, wantCode: 1, wantFix: "start the webhook's pods"},
		{name: "url unreachable from here is unverifiable", change: func(f *Facts) { f.Webhooks[0].AnswerErr = errors.New("dial tcp: timeout") }, wantCode: 3},
		{name: "serviceaccount missing", change: func(f *Facts) { f.ServiceAccount = nil },
			wantFailed: []string{CheckServiceAccount}, wantCode: 1, wantFix: "create it"},
		{name: "pod runs as an unannotated serviceaccount", change: func(f *Facts) {
			f.ServiceAccountName = "my-api"
			f.ServiceAccount = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "my-api", Namespace: "production"}}
		}, wantFailed: []string{CheckServiceAccount}, wantCode: 1, wantFix: "(s3-writer in this namespace)"},
		{name: "invalid role ARN", change: func(f *Facts) { f.ServiceAccount.Annotations[roleKey] = "arn:aws:iam::12:role/x" },
			wantFailed: []string{CheckServiceAccount}, wantCode: 1, wantFix: "role ARN such as"},
		{name: "stale pod created before the annotation", change: func(f *Facts) {
			f.Pod.Spec.Containers[0].Env, f.Pod.Spec.Volumes = nil, nil
			f.ServiceAccountChanged = f.Pod.CreationTimestamp.Add(time.Minute)
		}, wantFailed: []string{CheckInjection}, wantCode: 1, wantFix: "restart it"},
		{name: "pod injected with the previous role", change: func(f *Facts) { f.ServiceAccount.Annotations[roleKey] = "arn:aws:iam::123456789012:role/Other" },
			wantFailed: []string{CheckInjection}, wantCode: 1, wantFix: "restart it"},
		{name: "token audience changed since", change: func(f *Facts) {
			f.ServiceAccount.Annotations[irsa.Key(irsa.DefaultAnnotationPrefix, irsa.AudienceAnnotation)] = "sts.amazonaws.com"
			f.Pod.Spec.Volumes[0].Projected.Sources[0].ServiceAccountToken.Audience = "old"
		}, wantFailed: []string{CheckInjection}, wantCode: 1, wantFix: "restart it"},
		{name: "issuer not registered", change: func(f *Facts) { f.Provider = nil },
			wantFailed: []string{CheckOIDCProvider}, wantCode: 1, wantFix: "create-open-id-connect-provider --url " + issuer,
			wantMessage: []string{`the OIDC provider "` + providerARN + `" does not exist`, "InvalidIdentityToken (No OpenIDConnect provider found in your account for " + issuer + ")"}},
		{name: "audience not a client ID", change: func(f *Facts) { f.Provider.ClientIDs = []string{"other"} },
			wantFailed: []string{CheckAudience}, wantCode: 1, wantFix: "add-client-id-to-open-id-connect-provider",
			wantMessage: []string{`the token's aud "sts.amazonaws.com" is not among the client IDs [other] of the OIDC provider "` + providerARN + `"`, "InvalidIdentityToken (Incorrect token audience)"}},
		{name: "trust policy for another cluster's provider, not registered", change: func(f *Facts) {
			f.Provider = nil
			f.Trust = notTrusted(trustpolicy.ClaimProvider)
		}, wantFailed: []string{CheckOIDCProvider, CheckTrustPolicy}, wantCode: 1, wantFix: "create-open-id-connect-provider",
			wantMessage: []string{`the OIDC provider "` + providerARN + `" does not exist`,
				`does not accept tokens from the OIDC provider "` + providerARN + `" (statement 0: principal`, "once STS accepts the token (above), it answers AccessDenied"}},
		{name: "role in another account is unverifiable", change: func(f *Facts) { f.CallerAccount = "999999999999" }, wantCode: 3},
		{name: "not trusted", change: func(f *Facts) { f.Trust = notTrusted(trustpolicy.ClaimSubject) },
			wantFailed: []string{CheckTrustPolicy}, wantCode: 1, wantFix: "irsa-webhook trust policy --role-arn " + role,
			wantMessage: []string{`its trust policy does not accept sub "system:serviceaccount:production:s3-writer" (statement 0: `, ": STS answers AccessDenied (Not authorized to perform sts:AssumeRoleWithWebIdentity)"}},
		{name: "trust undetermined", change: func(f *Facts) { f.Trust.Result = trustpolicy.Undetermined }, wantCode: 3},
		{name: "implicit deny", change: func(f *Facts) { f.Simulation.Decision, f.Simulation.MatchedPolicies = "implicitDeny", nil },
			wantFailed: []string{CheckPermission}, wantCode: 1, wantFix: "put-role-policy --role-name S3WriterRole"},
		{name: "explicit deny", change: func(f *Facts) { f.Simulation.Decision = DecisionExplicitDeny },
			wantFailed: []string{CheckPermission}, wantCode: 1, wantFix: "remove or narrow the Deny statement of uploads"},
		{name: "simulation failed", change: func(f *Facts) { f.Simulation.Err = errors.New("AccessDenied") }, wantCode: 3},
		{name: "no role: AWS checks are not made", change: func(f *Facts) { delete(f.ServiceAccount.Annotations, roleKey) },
			wantFailed: []string{CheckServiceAccount}, wantCode: 1, wantFix: "annotate it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFacts()
			tc.change(&f)
			r := Evaluate(f)
			var failed []string
			fix := ""
			for _, c := range r.Checks {
				if c.Status == Fail {
					if fix == "" {
						fix = c.Fix
					}
					failed = append(failed, c.Name)
					if c.Fix == "" {
						t.Errorf("check %s failed without a fix", c.Name)
					}
				}
			}
			if !slices.Equal(failed, tc.wantFailed) {
				t.Errorf("failed %q, want %q\n%+v", failed, tc.wantFailed, r.Checks)
			}
			if got := r.ExitCode(); got != tc.wantCode {
				t.Errorf("exit code %d, want %d\n%+v", got, tc.wantCode, r.Checks)
			}
			if !strings.Contains(fix, tc.wantFix) {
				t.Errorf("fix %q does not contain %q", fix, tc.wantFix)
			}
			var messages []string
			for _, c := range r.Checks {
				if c.Status == Fail {
					messages = append(messages, c.Message)
				}
			}
			all := strings.Join(messages, "\n")
			rest := all
			for _, want := range tc.wantMessage {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("failed checks' messages lack %q (in this order):\n%s", want, all)
					break
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

const providerARN = "arn:aws:iam::123456789012:oidc-provider/oidc.example.test/id/X"

// notTrusted is the trust check's verdict on the pod's ServiceAccount when the role's trust
// policy rejects claim.
func notTrusted(claim trustpolicy.Claim) *serviceaccount.Verdict {
	reason := `statement 0: "oidc.example.test/id/X:sub" StringEquals "system:serviceaccount:staging:s3-writer" does not match "system:serviceaccount:production:s3-writer"`
	if claim == trustpolicy.ClaimProvider {
		reason = `statement 0: principal "arn:aws:iam::123456789012:oidc-provider/oidc.old.test/id/OLD" is not this cluster's provider "` + providerARN + `"`
	}
	return &serviceaccount.Verdict{Result: trustpolicy.NotTrusted, RoleARN: role, Subject: "system:serviceaccount:production:s3-writer", Audience: "sts.amazonaws.com",
		Provider: providerARN, Claims: []trustpolicy.Claim{claim}, Reasons: []string{reason}}
}

// TestChecklistOrder pins the order of the checklist: the path a credential takes.
func TestChecklistOrder(t *testing.T) {
	var names []string
	for _, c := range Evaluate(goodFacts()).Checks {
		names = append(names, c.Name)
	}
	want := []string{CheckWebhookCovers, CheckWebhookAnswers, CheckServiceAccount, CheckInjection, CheckOIDCProvider, CheckAudience, CheckTrustPolicy, CheckPermission}
	if !slices.Equal(names, want) {
		t.Errorf("order %q, want %q", names, want)
	}
}

func TestStale(t *testing.T) {
	d := irsa.NewDefaults()
	changed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		change  func(f *Facts)
		want    bool
		wantWhy string
	}{
		{name: "injected with the current role", change: func(*Facts) {}},
		{name: "injected with another role", change: func(f *Facts) { f.ServiceAccount.Annotations[roleKey] = "arn:aws:iam::123456789012:role/New" }, want: true, wantWhy: "now names arn:aws:iam::123456789012:role/New"},
		{name: "created before the annotation", change: func(f *Facts) {
			f.Pod.Spec.Containers[0].Env = nil
			f.Pod.CreationTimestamp = metav1.NewTime(changed.Add(-time.Minute))
		}, want: true, wantWhy: "before its ServiceAccount named role"},
		{name: "created after the annotation without credentials (the webhook chose not to)", change: func(f *Facts) {
			f.Pod.Spec.Containers[0].Env = nil
			f.Pod.CreationTimestamp = metav1.NewTime(changed.Add(time.Minute))
		}},
		{name: "no managedFields: without credentials is reported", change: func(f *Facts) {
			f.Pod.Spec.Containers[0].Env = nil
			f.ServiceAccount.ManagedFields = nil
		}, want: true, wantWhy: "has no AWS credentials although"},
		{name: "same second is not proof", change: func(f *Facts) {
			f.Pod.Spec.Containers[0].Env = nil
			f.Pod.CreationTimestamp = metav1.NewTime(changed)
		}},
		{name: "finished pod", change: func(f *Facts) {
			f.ServiceAccount.Annotations[roleKey] = "arn:aws:iam::123456789012:role/New"
			f.Pod.Status.Phase = corev1.PodSucceeded
		}},
		{name: "skip label", change: func(f *Facts) {
			f.ServiceAccount.Annotations[roleKey] = "arn:aws:iam::123456789012:role/New"
			f.Pod.Labels = map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel): "true"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := goodFacts()
			mt := metav1.NewTime(changed.Add(300 * time.Millisecond))
			f.ServiceAccount.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Time: &mt}}
			tc.change(&f)
			s, _ := Expected(f)
			sp, stale := Stale(f.Pod, f.ServiceAccount, s, d)
			if stale != tc.want {
				t.Fatalf("stale = %v, want %v (%+v)", stale, tc.want, sp)
			}
			if stale && (sp.Action != "restart" || !strings.Contains(sp.Reason, tc.wantWhy)) {
				t.Errorf("got %+v, want action restart and reason with %q", sp, tc.wantWhy)
			}
		})
	}
}
