package integration_test

import (
	"context"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

// referenceConfiguration registers the pod webhook at url the way the reference webhook's
// deploy/mutatingwebhook.yaml registers itself: configuration pod-identity-webhook, webhook
// pod-identity-webhook.amazonaws.com, pod CREATE, failurePolicy Ignore, no reinvocation, the
// skip label as objectSelector. (Its namespaceSelector is this test's, to keep the other
// tests' pods out.)
func referenceConfiguration(url string, caBundle []byte, ns string) *admissionregistrationv1.MutatingWebhookConfiguration {
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-identity-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pod-identity-webhook.amazonaws.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel), Operator: metav1.LabelSelectorOpDoesNotExist,
			}}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
		}},
	}
}

// TestDoubleRegistration is the switch from the reference webhook (docs/migrating.md): during
// it two MutatingWebhookConfigurations send every pod to a pod-identity webhook twice. Here
// both call this webhook (the second registered as the reference's deploy/ files register it),
// and the pod ends with exactly one token volume, one mount per container and one of each
// variable: the second call finds everything in place and adds nothing.
func TestDoubleRegistration(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "double")
	createServiceAccount(t, cs, ns, "app", withRole(testRoleARN))
	reg := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg := referenceConfiguration(suite.webhook.URL(webhookproc.PodPath), suite.tls.CAPEM, ns)
	if _, err := reg.Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })

	double := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "double"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "app",
			InitContainers:     []corev1.Container{{Name: "init", Image: "registry.invalid/init:1"}},
			Containers:         []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}, {Name: "sidecar", Image: "registry.invalid/sidecar:1"}},
		},
	}
	// Each pod is answered "mutated" by one call and "unchanged" by the other; wait until the
	// API server sends pods to both configurations (the new one takes a moment to apply).
	var got *corev1.Pod
	deadline := time.Now().Add(mappingWait)
	for {
		before := counter(scrape(t, suite.webhook), "irsa_webhook_pod_mutations_total", "outcome", string(pod.OutcomeUnchanged))
		p, err := cs.CoreV1().Pods(ns).Create(t.Context(), double, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("create pod: %v%s", err, suite.webhook.LogTail())
		}
		if counter(scrape(t, suite.webhook), "irsa_webhook_pod_mutations_total", "outcome", string(pod.OutcomeUnchanged)) > before {
			got = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second registration was never called within %v", mappingWait)
		}
		time.Sleep(pollEvery)
	}

	volumes := 0
	for _, v := range got.Spec.Volumes {
		if v.Name == irsa.VolumeName {
			volumes++
		}
	}
	if volumes != 1 {
		t.Errorf("%d volumes named %s, want 1: %+v", volumes, irsa.VolumeName, got.Spec.Volumes)
	}
	for _, c := range append(got.Spec.InitContainers, got.Spec.Containers...) {
		mounts := 0
		for _, m := range c.VolumeMounts {
			if m.Name == irsa.VolumeName {
				mounts++
			}
		}
		if mounts != 1 {
			t.Errorf("container %s: %d mounts of %s, want 1", c.Name, mounts, irsa.VolumeName)
		}
		for _, name := range []string{irsa.EnvRoleARN, irsa.EnvWebIdentityTokenFile} {
			n := 0
			for _, e := range c.Env {
				if e.Name == name {
					n++
				}
			}
			if n != 1 {
				t.Errorf("container %s: %d %s variables, want 1", c.Name, n, name)
			}
		}
		if v, _ := envValue(c, irsa.EnvRoleARN); v != testRoleARN {
			t.Errorf("container %s: %s = %q, want %q", c.Name, irsa.EnvRoleARN, v, testRoleARN)
		}
	}
}
