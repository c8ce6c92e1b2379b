package trustcheck_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// startWebhook starts a webhook with args and points the API server at it, for namespaces
// labelled with mode: its trust check, and its pod path (failurePolicy Ignore, as the chart
// registers it).
func startWebhook(t *testing.T, mode string, env []string, args ...string) *webhookproc.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, tls := startProcess(t, mode, suite.cp.KubeconfigPath(), env, args...)
	if err := p.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	registerTrustCheck(ctx, t, mode, p, tls)
	mc := webhookproc.PodWebhookConfiguration("irsa-trustcheck-"+mode, p.URL(webhookproc.PodPath), tls.CAPEM, admissionregistrationv1.Ignore)
	mc.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{modeLabel: mode}}
	reg := suite.cs.AdmissionregistrationV1()
	if _, err := reg.MutatingWebhookConfigurations().Create(ctx, mc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = reg.MutatingWebhookConfigurations().Delete(context.Background(), mc.Name, metav1.DeleteOptions{})
	})
	return p
}

// startProcess starts a webhook with args (after a short trust-check timeout and debug logs)
// against kubeconfig, stopped at the end of the test, its log shown if the test failed.
func startProcess(t *testing.T, mode, kubeconfig string, env []string, args ...string) (*webhookproc.Process, webhookproc.TLS) {
	t.Helper()
	tls, err := webhookproc.WriteServingCert(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := webhookproc.Start(webhookproc.Options{
		Binary: suite.binary, Kubeconfig: kubeconfig, TLS: tls,
		LogPath: filepath.Join(suite.dir, mode+".log"), Env: env,
		Args: append([]string{"--trust-check-timeout=" + checkTimeout.String(), "--log-level=debug"}, args...),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webhook log:%s", p.LogTail())
		}
		_ = p.Stop()
	})
	return p, tls
}

// registerTrustCheck points the API server's ServiceAccount admission (failurePolicy Fail) at
// p for namespaces labelled with mode, until the end of the test.
func registerTrustCheck(ctx context.Context, t *testing.T, mode string, p *webhookproc.Process, tls webhookproc.TLS) {
	t.Helper()
	cfg := webhookproc.ServiceAccountWebhookConfiguration("irsa-trustcheck-"+mode, p.URL(webhookproc.ServiceAccountPath), tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{modeLabel: mode}}
	reg := suite.cs.AdmissionregistrationV1()
	if _, err := reg.ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("register %s webhook: %v", mode, err)
	}
	t.Cleanup(func() {
		_ = reg.ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}

// waitTrustCheck waits until the API server calls the trust check for namespace ns: a dry
// run of a ServiceAccount that trustedRole does not trust gets a warning.
func waitTrustCheck(t *testing.T, ns string) {
	t.Helper()
	cs, warnings := client()
	waitFor(t, "the trust check to be called", func() bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(context.Background(), serviceAccount(ns, "probe", trustedRole), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && len(warnings.Take("")) > 0
	})
}

// metricLine reports whether the webhook's metrics hold the exact line.
func metricLine(t *testing.T, p *webhookproc.Process, line string) bool {
	t.Helper()
	_, body, err := webhookproc.GetAll(context.Background(), p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(body, line+"\n")
}

// dryRunPod creates a dry-run pod running as sa and returns it, waiting until the API server
// calls the webhook registered just before (its configuration takes a moment to apply).
func dryRunPod(t *testing.T, ns, sa string, called func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	waitFor(t, "the pod webhook to be called", func() bool {
		var err error
		p, err = suite.cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "app-"},
			Spec:       corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && called(p)
	})
	return p
}

func roleEnv(p *corev1.Pod) (string, bool) {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == irsa.EnvRoleARN {
			return e.Value, true
		}
	}
	return "", false
}

// TestComposeRoleARN: with --compose-role-arn a ServiceAccount names its role by path/name;
// the webhook learns its partition and account from STS GetCallerIdentity (the local STS,
// SigV4 signed), pods get the composed ARN, and the trust check evaluates that ARN: trusted
// for the ServiceAccount its policy names, a warning naming the composed ARN for another.
func TestComposeRoleARN(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "compose", unique("compose"))
	const composed = "arn:aws:iam::123456789012:role/team/Composed"
	suite.iam.PutRole(composed, minimal(composed, ns, "app"))
	p := startWebhook(t, "compose", suite.awsEnv, "--trust-check=warn", "--compose-role-arn")
	waitFor(t, "the webhook's AWS account", func() bool {
		return metricLine(t, p, `irsa_webhook_trust_check_dependencies_ready{dependency="aws_account"} 1`)
	})
	cs, warnings := client()
	waitTrustCheck(t, ns)
	for _, sa := range []string{"app", "other"} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, sa, "team/Composed"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w := strings.Join(warnings.Take(""), "\n")
		switch sa {
		case "app":
			if w != "" {
				t.Errorf("app, which the composed role trusts: warnings %q", w)
			}
		case "other":
			if want := "role " + composed + " does not trust system:serviceaccount:" + ns + ":other"; !strings.Contains(w, want) {
				t.Errorf("other: warning %q does not say %q", w, want)
			}
		}
	}
	pod := dryRunPod(t, ns, "app", func(p *corev1.Pod) bool { _, ok := roleEnv(p); return ok })
	if got, _ := roleEnv(pod); got != composed {
		t.Errorf("%s = %q, want %q", irsa.EnvRoleARN, got, composed)
	}
}

// TestComposeRoleARNWithoutSTS: while the webhook cannot learn its account (STS unreachable),
// a role name is not injected: the pod is admitted without credentials, with a warning and
// the metric outcome role_not_composed; a full ARN still is.
func TestComposeRoleARNWithoutSTS(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "compose-nosts", unique("nosts"))
	env := append(append([]string(nil), suite.awsEnv...), "AWS_ENDPOINT_URL=http://127.0.0.1:1") // nothing listens on port 1
	p := startWebhook(t, "compose-nosts", env, "--trust-check=warn", "--compose-role-arn")
	for _, sa := range []*corev1.ServiceAccount{serviceAccount(ns, "named", "team/Composed"), serviceAccount(ns, "arn", trustedRole)} {
		if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The full ARN's pod shows the webhook is called.
	if got, _ := roleEnv(dryRunPod(t, ns, "arn", func(p *corev1.Pod) bool { _, ok := roleEnv(p); return ok })); got != trustedRole {
		t.Errorf("full ARN: %s = %q, want %q", irsa.EnvRoleARN, got, trustedRole)
	}
	cs, warnings := client()
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "named"},
		Spec:       corev1.PodSpec{ServiceAccountName: "named", Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := roleEnv(pod); ok {
		t.Errorf("%s = %q injected while the account is unknown", irsa.EnvRoleARN, got)
	}
	if w := strings.Join(warnings.Take(""), "\n"); !strings.Contains(w, "not known yet") {
		t.Errorf("warnings %q do not say the account is not known yet", w)
	}
	if !metricLine(t, p, `irsa_webhook_pod_mutations_total{outcome="role_not_composed"} 1`) {
		t.Error(`metrics lack irsa_webhook_pod_mutations_total{outcome="role_not_composed"} 1`)
	}
	if !metricLine(t, p, `irsa_webhook_trust_check_dependencies_ready{dependency="aws_account"} 0`) {
		t.Error("metrics do not show the AWS account as unknown")
	}
}

// TestTrustCheckOnly: --mutate-pods=false (the chart's webhook.mutating.enabled=false, for EKS
// next to AWS's webhook) serves the ServiceAccount check and not the pod path: pods are left
// alone even by a pod webhook registered at it, and an untrusted ServiceAccount is warned.
func TestTrustCheckOnly(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "trustonly", unique("trustonly"))
	p := startWebhook(t, "trustonly", suite.awsEnv, "--trust-check=warn", "--mutate-pods=false")
	if code, err := postEmpty(p, webhookproc.PodPath); err != nil || code != http.StatusNotFound {
		t.Errorf("POST %s: HTTP %d (%v), want 404: the pod path is not served", webhookproc.PodPath, code, err)
	}
	cs, warnings := client()
	waitTrustCheck(t, ns)
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(warnings.Take(""), "\n"); !strings.Contains(w, "does not trust system:serviceaccount:"+ns+":app") {
		t.Errorf("warning %q, want the role's mismatch", w)
	}
	waitEvent(t, ns, "app", "TrustPolicyMismatch")
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       corev1.PodSpec{ServiceAccountName: "app", Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
	}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := roleEnv(pod); ok || len(pod.Spec.Volumes) > 1 {
		t.Errorf("pod mutated: %s=%q, volumes %v", irsa.EnvRoleARN, got, pod.Spec.Volumes)
	}
}

// postEmpty POSTs an empty AdmissionReview to path on the webhook and returns the status.
func postEmpty(p *webhookproc.Process, path string) (int, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.Options().TLS.CAPEM)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(p.URL(path), "application/json", strings.NewReader(`{}`))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}
