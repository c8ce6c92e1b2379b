package integration_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// ownWebhookLabel marks a namespace the suite's webhook configuration leaves out (main_test.go),
// for a test that registers a configuration of its own there.
const ownWebhookLabel = "irsa-it.test/own-webhook-configuration"

// registrationTimeout bounds the wait for the API server to call a webhook configuration
// just created (its informer usually catches up within a second).
const registrationTimeout = 30 * time.Second

// newOwnNamespace creates a namespace that the suite's webhook configuration leaves out
// (it carries ownWebhookLabel), for a test that registers a configuration of its own.
func newOwnNamespace(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns := newNamespace(t, cs, prefix)
	patch := []byte(`{"metadata":{"labels":{"` + ownWebhookLabel + `":"` + ns + `"}}}`)
	if _, err := cs.CoreV1().Namespaces().Patch(t.Context(), ns, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("label namespace %s: %v", ns, err)
	}
	return ns
}

// register creates a MutatingWebhookConfiguration for the test's duration.
func register(t *testing.T, cs kubernetes.Interface, cfg *admissionregistrationv1.MutatingWebhookConfiguration) {
	t.Helper()
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("register %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, cfg.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete webhook configuration %s: %v", cfg.Name, err)
		}
	})
}

// createMutated polls dry-run creations of p until the API server returns it with credentials
// (the new webhook configuration has reached the API server and the webhook injects), then
// creates it for real. It fails with the last error (a refused review shows here, as the
// configurations use failurePolicy Fail) when that does not happen within registrationTimeout.
func createMutated(t *testing.T, cs kubernetes.Interface, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), registrationTimeout)
	defer cancel()
	var last error
	for {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			last = err
		case !hasEnv(got.Spec.Containers[0], irsa.EnvRoleARN):
			last = errors.New("the pod came back without " + irsa.EnvRoleARN)
		default:
			return createPod(t, cs, ns, p)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s/%s never mutated within %v: %v", ns, p.Name, registrationTimeout, last)
		case <-time.After(pollEvery):
		}
	}
}

// TestV1beta1Registration registers the webhook as the reference webhook's deploy/ files do,
// with admissionReviewVersions [v1beta1]: the API server sends admission.k8s.io/v1beta1
// reviews, and the pods come out mutated, with the webhook's warnings.
func TestV1beta1Registration(t *testing.T) {
	cs, w := newClient(t)
	ns := newOwnNamespace(t, cs, "v1beta1")
	cfg := webhookproc.PodWebhookConfiguration("irsa-it-v1beta1", suite.webhook.URL(webhookproc.PodPath), suite.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].AdmissionReviewVersions = []string{"v1beta1"}
	cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{ownWebhookLabel: ns}}
	register(t, cs, cfg)
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))

	got := createMutated(t, cs, ns, simplePod("app", "s3-writer"))
	if v, _ := envValue(got.Spec.Containers[0], irsa.EnvRoleARN); v != testRoleARN {
		t.Errorf("%s = %q, want %q", irsa.EnvRoleARN, v, testRoleARN)
	}
	if v := tokenVolume(got); v == nil || v.Audience != irsa.DefaultTokenAudience {
		t.Errorf("token projection = %s, want audience %s", toJSON(t, v), irsa.DefaultTokenAudience)
	}

	w.Take("") // the dry runs' warnings
	p := simplePod("short-token", "s3-writer")
	p.Annotations = map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.TokenExpirationAnnotation): "100"}
	createPod(t, cs, ns, p)
	if ws := w.Take(pod.WarningPrefix); len(ws) != 1 {
		t.Errorf("warnings of a v1beta1 answer = %q, want the one about the raised token expiration", ws)
	}
}

// TestKubeSystemCoveredByDefault starts the webhook with its default flags, as the chart's pod
// (POD_NAMESPACE from the downward API): a kube-system pod whose ServiceAccount names a role
// is mutated, and a pod in the webhook's own namespace is not (the webhook, called, leaves it
// alone).
func TestKubeSystemCoveredByDefault(t *testing.T) {
	cs, _ := newClient(t)
	own := newOwnNamespace(t, cs, "own")
	proc, err := webhookproc.Start(webhookproc.Options{
		Binary:      suite.binary,
		Kubeconfig:  suite.cp.KubeconfigPath(),
		TLS:         suite.tls,
		LogPath:     filepath.Join(suite.dir, "webhook-defaults.log"),
		Args:        slices.Clone(baseArgs),
		Env:         []string{"POD_NAMESPACE=" + own},
		StopTimeout: stopTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Error(err)
		}
	})
	if err := proc.WaitReady(t.Context(), readyTimeout); err != nil {
		t.Fatal(err)
	}
	// kube-system is not covered by the suite's configuration; own is left out of it by its label.
	cfg := webhookproc.PodWebhookConfiguration("irsa-it-defaults", proc.URL(webhookproc.PodPath), suite.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: []string{metav1.NamespaceSystem, own},
	}}}
	register(t, cs, cfg)

	const addon = "irsa-it-addon" // e.g. the AWS Load Balancer Controller's ServiceAccount
	createServiceAccount(t, cs, metav1.NamespaceSystem, addon, withRole(testRoleARN))
	t.Cleanup(func() {
		_ = cs.CoreV1().ServiceAccounts(metav1.NamespaceSystem).Delete(context.Background(), addon, metav1.DeleteOptions{})
	})
	got := createMutated(t, cs, metav1.NamespaceSystem, simplePod(addon, addon))
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(metav1.NamespaceSystem).Delete(context.Background(), got.Name, metav1.DeleteOptions{})
	})
	if v, _ := envValue(got.Spec.Containers[0], irsa.EnvRoleARN); v != testRoleARN {
		t.Errorf("kube-system pod: %s = %q, want %q", irsa.EnvRoleARN, v, testRoleARN)
	}

	createServiceAccount(t, cs, own, "s3-writer", withRole(testRoleARN))
	before := scrape(t, proc)
	p := createPod(t, cs, own, simplePod("own", "s3-writer"))
	after := scrape(t, proc)
	if hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) {
		t.Errorf("a pod in the webhook's own namespace %s was mutated", own)
	}
	if d := counter(after, "irsa_webhook_pod_mutations_total", "outcome", string(pod.OutcomeExcluded)) -
		counter(before, "irsa_webhook_pod_mutations_total", "outcome", string(pod.OutcomeExcluded)); d != 1 {
		t.Errorf("the webhook's excluded_namespace count rose by %v, want 1 (called for %s and left it alone)", d, own)
	}
}
