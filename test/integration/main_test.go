// Package integration_test runs the irsa-webhook binary against a real etcd and kube-apiserver:
// the webhook is built once, started as a process (TLS, probes, metrics, JSON logs to a file)
// and registered with a MutatingWebhookConfiguration, and every test proves its behaviour
// through the API server, as a user of the cluster would see it.
//
// Tests run one after the other: TestReadiness restarts the shared webhook process.
package integration_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

const (
	// testIssuer is not the apiserver's own URL, like a real EKS or S3-hosted issuer.
	testIssuer = "https://oidc.irsa-integration.test/id/INTEGRATION"
	// excludedNamespace is in the webhook's --excluded-namespaces but not excluded by the
	// webhook configuration's namespaceSelector: the webhook itself must refuse it.
	excludedNamespace = "irsa-it-excluded"
	// probeNamespace holds the ServiceAccount TestMain uses to wait until the API server calls
	// the webhook.
	probeNamespace = "irsa-it-probe"
	webhookConfig  = "irsa-webhook-integration"
	testRoleARN    = "arn:aws:iam::123456789012:role/S3WriterRole"
	setupTimeout   = 3 * time.Minute
	stopTimeout    = 10 * time.Second
	readyTimeout   = time.Minute
	pollEvery      = 100 * time.Millisecond
)

// roleAnnotation is the ServiceAccount annotation naming the role.
var roleAnnotation = harness.RoleAnnotation

// baseArgs are the serve flags every webhook process of these tests gets beyond the standard
// ones: the ServiceAccount trust check is off, so that starting the webhook never reaches out
// to AWS (STS, instance metadata); these tests are about the pod webhook.
var baseArgs = []string{"--trust-check=off"}

// suite is what TestMain set up; tests share it and run sequentially.
var suite struct {
	h       *harness.Suite
	cp      *controlplane.ControlPlane
	dir     string // webhook binary, certificates, logs
	binary  string
	tls     webhookproc.TLS
	webhook *webhookproc.Process // replaced by TestReadiness when it restarts the webhook
}

func TestMain(m *testing.M) {
	os.Exit(harness.Main(harness.Options{Name: "integration", ControlPlane: controlplane.Options{IssuerURL: testIssuer}}, func(s *harness.Suite) int {
		suite.h, suite.cp, suite.dir, suite.binary = s, s.CP, s.Dir, s.Binary
		began := time.Now()
		err := setUp()
		defer func() {
			if err := suite.webhook.Stop(); err != nil {
				s.Logf("%v", err)
			}
		}()
		if err != nil {
			s.Logf("set up: %v", err)
			return 1
		}
		s.Logf("serving and registered in %v (log %s)", time.Since(began).Round(time.Millisecond), suite.webhook.LogPath())
		return m.Run()
	}))
}

// setUp starts the webhook, registers it and waits until the API server calls it.
func setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	var err error
	if suite.tls, err = webhookproc.WriteServingCert(suite.dir, time.Now()); err != nil {
		return err
	}
	suite.webhook, err = webhookproc.Start(webhookproc.Options{
		Binary:      suite.binary,
		Kubeconfig:  suite.cp.KubeconfigPath(),
		TLS:         suite.tls,
		LogPath:     filepath.Join(suite.dir, "webhook.log"),
		Args:        append(slices.Clone(baseArgs), "--excluded-namespaces=kube-system,"+excludedNamespace, "--watch-config-map", "--config-map-namespace="+mappingNamespace),
		StopTimeout: stopTimeout,
	})
	if err != nil {
		return err
	}
	if err := suite.webhook.WaitReady(ctx, readyTimeout); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(suite.cp.Config())
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	cfg := webhookproc.PodWebhookConfiguration(webhookConfig, suite.webhook.URL(webhookproc.PodPath), suite.tls.CAPEM, admissionregistrationv1.Fail)
	sel := cfg.Webhooks[0].NamespaceSelector
	sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{Key: ownWebhookLabel, Operator: metav1.LabelSelectorOpDoesNotExist})
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register the webhook: %w", err)
	}
	for _, ns := range []string{probeNamespace, excludedNamespace, mappingNamespace} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return waitUntilCalled(ctx, cs)
}

// waitUntilCalled polls with dry-run pod creations until the API server's webhook
// configuration has caught up and the webhook mutates.
func waitUntilCalled(ctx context.Context, cs kubernetes.Interface) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{roleAnnotation: testRoleARN}}}
	if _, err := cs.CoreV1().ServiceAccounts(probeNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create probe serviceaccount: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for {
		p, err := cs.CoreV1().Pods(probeNamespace).Create(ctx, simplePod("probe", "probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			last = err
		case !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN):
			last = errors.New("dry-run pod came back without " + irsa.EnvRoleARN)
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not call the webhook: %w%s", last, suite.webhook.LogTail())
		case <-time.After(pollEvery):
		}
	}
}

// The harness's helpers under the short names this package's tests use.
var (
	simplePod = harness.SimplePod
	hasEnv    = harness.HasEnv
	envValue  = harness.EnvValue
)

// newClient returns an admin clientset whose warnings are collected.
func newClient(*testing.T) (*kubernetes.Clientset, *controlplane.Warnings) {
	return suite.h.WarningClient()
}

// newNamespace creates a namespace for one test and deletes it when the test ends. (Without a
// controller-manager the deletion only marks it Terminating; the control plane is thrown away.)
func newNamespace(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "irsa-it-" + prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// createServiceAccount creates a ServiceAccount with the given annotations.
func createServiceAccount(t *testing.T, cs kubernetes.Interface, ns, name string, annotations map[string]string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create serviceaccount %s/%s: %v", ns, name, err)
	}
}

func createPod(t *testing.T, cs kubernetes.Interface, ns string, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := cs.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v (webhook log %s)", ns, p.Name, err, suite.webhook.LogPath())
	}
	return got
}

func withRole(arn string) map[string]string { return map[string]string{roleAnnotation: arn} }
