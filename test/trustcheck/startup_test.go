package trustcheck_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// The trust check learns two things from outside when it starts: the cluster's issuer (from
// the API server's OIDC discovery document) and its own AWS account (STS). These tests start
// an enforce-mode webhook while one of them is unreachable, bring it up, and check that the
// webhook says so until then (readiness, gauge, warning) and enforces after.

const (
	dependenciesCheck = "/readyz/trust-check-dependencies"
	dependencyWait    = 90 * time.Second // the retry backoff doubles from 1s; the outage is a few seconds
)

func TestEnforceWaitsForTheAPIServerAtStart(t *testing.T) {
	ctx := context.Background()
	// The webhook reaches the API server through a gate that hangs up on every connection
	// until it is opened: to the webhook, the API server is down.
	gate := harness.NewForwarder(t)
	kubeconfig := kubeconfigVia(t, "http-gate.kubeconfig", "https://"+gate.Addr())
	p := startEnforce(t, "startup-apiserver", kubeconfig, suite.awsEnv)
	ns := namespace(ctx, t, "startup-apiserver", unique("startup-apiserver"))

	waitFor(t, "the webhook to serve and to have failed to reach the API server", func() bool {
		code, _, err := webhookproc.Get(ctx, p.HealthURL("/healthz"))
		return err == nil && code == http.StatusOK && gate.Refused() > 0
	})
	assertDependency(t, p, "issuer", false)
	// Enforce cannot check the trust without the issuer: it admits (not fail-closed), and
	// says that it did not verify and why.
	cs, warnings := client()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("while the issuer is unknown, enforce (not fail-closed) must admit: %v", err)
	}
	w := warnings.Take("")
	if len(w) != 1 || !strings.Contains(w[0], "issuer is not known yet") || !strings.Contains(w[0], "admitted unverified") {
		t.Errorf("warnings = %q, want one saying the issuer is not known yet and the ServiceAccount was admitted unverified", w)
	}

	gate.SetBackends(strings.TrimPrefix(suite.cp.Host(), "https://"))
	up := time.Now()
	waitFor(t, "the webhook to be ready once the API server is reachable", func() bool {
		code, _, err := webhookproc.Get(ctx, p.HealthURL("/readyz"))
		return err == nil && code == http.StatusOK
	})
	t.Logf("ready %v after the API server became reachable", time.Since(up).Round(10*time.Millisecond))
	assertDependency(t, p, "issuer", true)
	_, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "does not trust") {
		t.Fatalf("err = %v, want Forbidden: the role does not trust %s/app", err, ns)
	}
}

func TestEnforceWaitsForSTSAtStart(t *testing.T) {
	ctx := context.Background()
	// STS gets its own endpoint (the SDK's AWS_ENDPOINT_URL_STS), down at start; IAM stays up.
	sts := iamserver.New()
	t.Cleanup(sts.Close)
	sts.Down()
	env := append(append([]string(nil), suite.awsEnv...), "AWS_ENDPOINT_URL_STS="+sts.URL())
	p := startEnforce(t, "startup-sts", suite.cp.KubeconfigPath(), env)
	ns := namespace(ctx, t, "startup-sts", unique("startup-sts"))
	ghost := "arn:aws:iam::123456789012:role/StartupGhost" // no such role in the webhook's account

	waitFor(t, "the webhook to serve", func() bool {
		code, _, err := webhookproc.Get(ctx, p.HealthURL("/healthz"))
		return err == nil && code == http.StatusOK
	})
	assertDependency(t, p, "aws_account", false)
	// Without its account, the webhook cannot tell a missing role from one in another
	// account: undetermined, admitted, and said so.
	cs, warnings := client()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "ghost", ghost), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("while the account is unknown, enforce (not fail-closed) must admit: %v", err)
	}
	if w := warnings.Take(""); len(w) != 1 || !strings.Contains(w[0], "not verified") || !strings.Contains(w[0], "admitted unverified") {
		t.Errorf("warnings = %q, want one saying the trust was not verified and the ServiceAccount was admitted unverified", w)
	}

	if err := sts.Up(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	waitFor(t, "the webhook to be ready once STS is reachable", func() bool {
		code, _, err := webhookproc.Get(ctx, p.HealthURL("/readyz"))
		return err == nil && code == http.StatusOK
	})
	t.Logf("ready %v after STS became reachable", time.Since(up).Round(10*time.Millisecond))
	assertDependency(t, p, "aws_account", true)
	_, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "ghost", ghost), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want Forbidden: the role does not exist", err)
	}
}

// startEnforce starts an enforce-mode webhook (issuer discovered, not configured) and points
// the API server at it for namespaces labelled with mode.
func startEnforce(t *testing.T, mode, kubeconfig string, env []string) *webhookproc.Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, tls := startProcess(t, mode, kubeconfig, env, "--trust-check=enforce")
	registerTrustCheck(ctx, t, mode, p, tls)
	return p
}

// assertDependency checks the readiness check and the gauge of one dependency.
func assertDependency(t *testing.T, p *webhookproc.Process, dependency string, ready bool) {
	t.Helper()
	ctx := context.Background()
	code, body, err := webhookproc.Get(ctx, p.HealthURL(dependenciesCheck))
	if err != nil {
		t.Fatal(err)
	}
	if ready != (code == http.StatusOK) || code == http.StatusNotFound {
		t.Errorf("%s: HTTP %d %q, want the check to exist and to pass=%v", dependenciesCheck, code, strings.TrimSpace(body), ready)
	}
	if code, _, err := webhookproc.Get(ctx, p.HealthURL("/readyz")); err != nil || (code == http.StatusOK) != ready {
		t.Errorf("/readyz: HTTP %d (%v), want ready=%v", code, err, ready)
	}
	_, metrics, err := webhookproc.GetAll(ctx, p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	if ready {
		want = 1
	}
	line := fmt.Sprintf("irsa_webhook_trust_check_dependencies_ready{dependency=%q} %d", dependency, want)
	if !strings.Contains(metrics, line+"\n") {
		t.Errorf("metrics lack %q", line)
	}
}

// unique names a namespace after prefix, distinct in every run (-count=N: the last run's
// namespace may still be terminating).
func unique(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e6) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(dependencyWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", dependencyWait, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kubeconfigVia writes a copy of the admin kubeconfig whose server is url.
func kubeconfigVia(t *testing.T, name, url string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(suite.cp.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = url
	}
	path := filepath.Join(t.TempDir(), name)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
