package trustcheck_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/podcreds"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	// chainLabel selects the namespaces whose pods the warn webhook process mutates.
	chainLabel    = "irsa-trustcheck.test/chain"
	chainConfig   = "irsa-trustcheck-chain"
	examplesDir   = "../../deploy/examples"
	walkthrough   = "arn:aws:iam::123456789012:role/S3WriterRole"
	chainDeadline = time.Minute
	// oldIssuer is another cluster's issuer: the one a copied trust policy (and its IAM OIDC
	// provider) were made for.
	oldIssuer = "https://oidc.old-cluster.test/id/OLDCLUSTER"
)

// chainCase is one run of the walkthrough's Deployment: a ServiceAccount (and its role) as a
// user sets them up, a pod as its ReplicaSet creates it, the pod's SDK asking STS, and what
// the trust check and doctor said of it beforehand.
type chainCase struct {
	name      string
	namespace string
	// sa changes the example ServiceAccount (already in namespace).
	sa func(sa *corev1.ServiceAccount)
	// iam changes the account for this case; the returned function undoes it.
	iam func() (undo func())
	// later runs the STS clock ahead of the token's creation.
	later time.Duration

	wantCode, wantMessage string // STS's answer, "" for credentials
	// cause names why STS refuses, in the words both the trust check's warning and a ✗ line
	// of doctor must use; "" when no check can know in advance.
	cause      string
	wantFailed []string // doctor's ✗ checks, in order
	// wantDoctor is in doctor's report when the cause is not (the expired token).
	wantDoctor string
}

// TestCredentialChain runs the whole chain for the walkthrough's Deployment
// (deploy/examples/): the ServiceAccount's trust check at apply time, the webhook's mutation
// of the pod, the kubelet's token, aws-sdk-go-v2's default credential chain with exactly the
// pod's environment against the local STS (which verifies the token with the cluster's JWKS,
// the IAM OIDC provider and the role's trust policy), and `irsa-webhook doctor pod`. It gets
// the assumed role's identity; for each mistake STS answers with AWS's error code, and the
// trust check's warning and doctor's ✗ line had named the cause in the same words.
func TestCredentialChain(t *testing.T) {
	ctx := t.Context()
	setUpChain(t)
	ns, sa, deploy := readExamples(t)

	provider := `the OIDC provider "arn:aws:iam::123456789012:oidc-provider/` + strings.TrimPrefix(testIssuer, "https://") + `"`
	tests := []chainCase{
		{
			name: "the walkthrough: production/s3-writer assumes S3WriterRole", namespace: ns.Name,
			wantDoctor: "lifetime 86400s",
		},
		{
			name: "wrong namespace: the role trusts production's s3-writer, not staging's", namespace: "staging",
			wantCode: "AccessDenied", wantMessage: "Not authorized to perform sts:AssumeRoleWithWebIdentity",
			cause:      `its trust policy does not accept sub "system:serviceaccount:staging:s3-writer"`,
			wantFailed: []string{doctor.CheckTrustPolicy},
		},
		{
			name: "wrong audience: the ServiceAccount asks for sts.amazon.com", namespace: "reports",
			sa: func(sa *corev1.ServiceAccount) {
				sa.Annotations[irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)] = "arn:aws:iam::123456789012:role/ReportsRole"
				sa.Annotations[irsa.Key(irsa.DefaultAnnotationPrefix, irsa.AudienceAnnotation)] = "sts.amazon.com"
			},
			iam: func() func() {
				suite.iam.PutRole("arn:aws:iam::123456789012:role/ReportsRole", minimal("arn:aws:iam::123456789012:role/ReportsRole", "reports", "s3-writer"))
				return func() {}
			},
			wantCode: "InvalidIdentityToken", wantMessage: "Incorrect token audience",
			cause:      `aud "sts.amazon.com"`,
			wantFailed: []string{doctor.CheckAudience, doctor.CheckTrustPolicy},
		},
		{
			name: "wrong issuer: the role and the IAM OIDC provider are another cluster's", namespace: "legacy",
			sa: func(sa *corev1.ServiceAccount) {
				sa.Annotations[irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)] = "arn:aws:iam::123456789012:role/LegacyRole"
			},
			iam: func() func() {
				role := "arn:aws:iam::123456789012:role/LegacyRole"
				doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: role, IssuerURL: oldIssuer, Namespace: "legacy", ServiceAccount: "s3-writer", Audience: irsa.DefaultTokenAudience})
				if err != nil {
					t.Fatal(err)
				}
				suite.iam.PutRole(role, doc)
				suite.iam.PutOIDCProvider(iamserver.CallerAccount, oldIssuer, irsa.DefaultTokenAudience)
				suite.iam.DeleteOIDCProvider(iamserver.CallerAccount, testIssuer)
				return func() {
					suite.iam.DeleteOIDCProvider(iamserver.CallerAccount, oldIssuer)
					suite.iam.PutOIDCProvider(iamserver.CallerAccount, testIssuer, irsa.DefaultTokenAudience)
				}
			},
			wantCode: "InvalidIdentityToken", wantMessage: "No OpenIDConnect provider found in your account for " + testIssuer,
			cause:      provider,
			wantFailed: []string{doctor.CheckOIDCProvider, doctor.CheckTrustPolicy},
		},
		{
			// Neither check can see this coming: the token file is the kubelet's, refreshed
			// before 80% of its lifetime has passed; it expires only when it is not (a
			// kubelet cut off from the API server, a token copied out of the pod, a clock
			// off). Doctor finds nothing wrong and reports the token's lifetime.
			name: "expired token: the walkthrough's pod's token file was not refreshed", namespace: ns.Name,
			later:    24*time.Hour + time.Minute,
			wantCode: "ExpiredTokenException", wantMessage: "Token expired: current date/time",
			wantDoctor: "lifetime 86400s",
		},
	}
	parent := t
	// warnedAt holds the trust check's warnings when each namespace's ServiceAccount was
	// created: a case in the namespace of an earlier one runs another pod of the same.
	warnedAt := map[string][]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.iam != nil {
				t.Cleanup(tc.iam())
			}
			warned, seen := warnedAt[tc.namespace]
			if !seen {
				createChainNamespace(t, parent, tc.namespace)
				// Step 4: the ServiceAccount, checked by the webhook at apply time.
				s := sa.DeepCopy()
				s.Namespace = tc.namespace
				if tc.sa != nil {
					tc.sa(s)
				}
				cs, warnings := client()
				if _, err := cs.CoreV1().ServiceAccounts(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
					t.Fatalf("create serviceaccount %s/%s: %v", s.Namespace, s.Name, err)
				}
				warned = warnings.Take("")
				warnedAt[tc.namespace] = warned
			}
			t.Logf("the trust check's warnings when serviceaccount %s/%s was created: %q", tc.namespace, sa.Name, warned)

			// Step 5: the pod the Deployment's ReplicaSet creates, mutated by the webhook.
			pod := createDeploymentPod(t, deploy, tc.namespace)

			// Step 6: `aws sts get-caller-identity` in the pod.
			if tc.later != 0 {
				suite.iam.SetClock(func() time.Time { return time.Now().Add(tc.later) })
			}
			id, err := podcreds.CallerIdentity(ctx, suite.cs, pod, t.TempDir(), suite.iam.URL())
			suite.iam.SetClock(time.Now)
			switch {
			case tc.wantCode == "" && err != nil:
				t.Fatalf("GetCallerIdentity from pod %s/%s: %v", pod.Namespace, pod.Name, err)
			case tc.wantCode == "":
				arn, user := aws.ToString(id.Arn), aws.ToString(id.UserId)
				session, ok := strings.CutPrefix(arn, "arn:aws:sts::123456789012:assumed-role/S3WriterRole/")
				if !ok || session == "" || aws.ToString(id.Account) != "123456789012" || !strings.HasPrefix(user, "AROA") || !strings.HasSuffix(user, ":"+session) {
					t.Errorf("GetCallerIdentity: Arn %q, UserId %q, Account %q; want S3WriterRole's assumed-role ARN and AROA...:session", arn, user, aws.ToString(id.Account))
				}
				t.Logf("GetCallerIdentity: Arn %s, UserId %s", arn, user)
			case podcreds.ErrorCode(err) != tc.wantCode || !strings.Contains(podcreds.ErrorMessage(err), tc.wantMessage):
				t.Errorf("GetCallerIdentity: %v\nwant %s: %s...", err, tc.wantCode, tc.wantMessage)
			default:
				t.Logf("STS: %s: %s", podcreds.ErrorCode(err), podcreds.ErrorMessage(err))
			}

			// What the admin's doctor says of the pod.
			text, code := runChainDoctor(t, "pod", pod.Name, "-n", pod.Namespace)
			t.Logf("$ irsa-webhook doctor pod %s -n %s\n%s$ echo $?\n%d", pod.Name, pod.Namespace, text, code)
			report := chainDoctorReport(t, "pod", pod.Name, "-n", pod.Namespace)
			var failed []string
			var failedLines []string
			for _, c := range report.Checks {
				if c.Status == doctor.Fail {
					failed = append(failed, c.Name)
					failedLines = append(failedLines, c.Message)
				}
			}
			if !slices.Equal(failed, tc.wantFailed) {
				t.Errorf("doctor's ✗ checks %q, want %q", failed, tc.wantFailed)
			}
			if wantCode := map[bool]int{true: 1, false: 0}[len(tc.wantFailed) > 0]; code != wantCode {
				t.Errorf("doctor exited %d, want %d", code, wantCode)
			}
			if tc.wantDoctor != "" && !strings.Contains(text, tc.wantDoctor) {
				t.Errorf("doctor's report lacks %q", tc.wantDoctor)
			}

			// The trust check and doctor had said why, in the same words.
			if tc.cause == "" {
				if len(warned) > 0 {
					t.Errorf("the trust check warned %q about a ServiceAccount its role trusts", warned)
				}
				return
			}
			if len(warned) != 1 || !strings.Contains(warned[0], tc.cause) {
				t.Errorf("the trust check's warnings %q do not say %q", warned, tc.cause)
			}
			for _, secret := range []string{"statement", "production", "old-cluster", "OLDCLUSTER"} {
				for _, w := range warned {
					if strings.Contains(w, secret) {
						t.Errorf("the tenant's warning shows %q of the role's trust policy: %q", secret, w)
					}
				}
			}
			if !slices.ContainsFunc(failedLines, func(m string) bool { return strings.Contains(m, tc.cause) }) {
				t.Errorf("no ✗ line of doctor says %q:\n%s", tc.cause, strings.Join(failedLines, "\n"))
			}
			if !slices.ContainsFunc(failedLines, func(m string) bool { return strings.Contains(m, "STS answers "+tc.wantCode) }) {
				t.Errorf("no ✗ line of doctor says that STS answers %s:\n%s", tc.wantCode, strings.Join(failedLines, "\n"))
			}
		})
	}
}

// setUpChain registers the warn webhook process as the pod webhook of the chain's
// namespaces, registers this cluster's issuer as an IAM OIDC provider of the account
// (client ID sts.amazonaws.com, the walkthrough's step 1) and lets STS fetch its keys.
func setUpChain(t *testing.T) {
	ctx := t.Context()
	suite.iam.PutRole(walkthrough, minimal(walkthrough, "production", "s3-writer"))
	suite.iam.PutOIDCProvider(iamserver.CallerAccount, testIssuer, irsa.DefaultTokenAudience)
	t.Cleanup(func() { suite.iam.DeleteOIDCProvider(iamserver.CallerAccount, testIssuer) })
	if err := podcreds.PublishIssuer(ctx, suite.cs, suite.iam, testIssuer, suite.cp.Host(), suite.cp.CACertPEM()); err != nil {
		t.Fatal(err)
	}
	cfg := webhookproc.PodWebhookConfiguration(chainConfig, suite.webhooks["warn"].URL(webhookproc.PodPath), suite.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{chainLabel: "true"}}
	if _, err := suite.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("register the pod webhook: %v", err)
	}
	t.Cleanup(func() {
		_ = suite.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), chainConfig, metav1.DeleteOptions{})
	})
}

// readExamples reads the walkthrough's Namespace, ServiceAccount and Deployment.
func readExamples(t *testing.T) (*corev1.Namespace, *corev1.ServiceAccount, *appsv1.Deployment) {
	t.Helper()
	var ns corev1.Namespace
	var sa corev1.ServiceAccount
	var deploy appsv1.Deployment
	for name, into := range map[string]any{"namespace.yaml": &ns, "serviceaccount.yaml": &sa, "deployment.yaml": &deploy} {
		data, err := os.ReadFile(filepath.Join(examplesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(data, into); err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
	}
	return &ns, &sa, &deploy
}

// createChainNamespace creates a namespace the trust check (warn) and the pod webhook cover,
// deleted when the parent test ends.
func createChainNamespace(t, parent *testing.T, name string) {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{modeLabel: "warn", chainLabel: "true"}}}
	if _, err := suite.cs.CoreV1().Namespaces().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	parent.Cleanup(func() { _ = suite.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// createDeploymentPod creates in ns what the Deployment's ReplicaSet would (no
// controller-manager runs), once the API server calls the pod webhook for it.
func createDeploymentPod(t *testing.T, deploy *appsv1.Deployment, ns string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: deploy.Name + "-", Namespace: ns, Labels: deploy.Spec.Template.Labels},
		Spec:       *deploy.Spec.Template.Spec.DeepCopy(),
	}
	ctx, cancel := context.WithTimeout(t.Context(), chainDeadline)
	defer cancel()
	for {
		p, err := suite.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && podcreds.TokenSource(p) != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the API server does not call the pod webhook for namespace %s: %v%s", ns, err, suite.webhooks["warn"].LogTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	created, err := suite.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a pod of deployment %s in %s: %v", deploy.Name, ns, err)
	}
	return created
}

// runChainDoctor runs `irsa-webhook doctor` as an admin would: the kubeconfig, and the AWS
// SDK configured by the environment for the local IAM endpoint.
func runChainDoctor(t *testing.T, args ...string) (string, int) {
	t.Helper()
	env := append([]string{"AWS_MAX_ATTEMPTS=1"}, suite.awsEnv...)
	return suite.h.RunBinary(t, chainDeadline, env, append([]string{"doctor", "--kubeconfig", suite.cp.KubeconfigPath(), "--timeout", "5s"}, args...)...)
}

func chainDoctorReport(t *testing.T, args ...string) doctor.Report {
	t.Helper()
	out, _ := runChainDoctor(t, append(args, "-o", "json")...)
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode doctor's report: %v\n%s", err, out)
	}
	return r
}
