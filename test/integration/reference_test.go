package integration_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// referenceDeploymentArgs is the command of the reference webhook's
// deploy/deployment-base.yaml (aws/amazon-eks-pod-identity-webhook), after its binary.
var referenceDeploymentArgs = []string{
	"--in-cluster=false",
	"--namespace=default",
	"--service-name=pod-identity-webhook",
	"--annotation-prefix=eks.amazonaws.com",
	"--token-audience=sts.amazonaws.com",
	"--logtostderr",
}

// TestReferenceDeploymentArgs: the binary started with exactly the reference's arguments (only
// the port, the certificate files and the kubeconfig redirected, with the reference's own
// flags) serves pod mutations on the reference's path, /mutate, called by the API server; the
// reference's flags log what became of them; metrics are on --metrics-port and the probes on
// the webhook's port.
func TestReferenceDeploymentArgs(t *testing.T) {
	ctx := t.Context()
	cs, _ := newClient(t)
	ports, err := controlplane.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	port, metricsPort := ports[0], ports[1]
	args := append(append([]string{}, referenceDeploymentArgs...),
		"--port="+strconv.Itoa(port),
		"--metrics-port="+strconv.Itoa(metricsPort),
		"--tls-cert="+suite.tls.CertFile,
		"--tls-key="+suite.tls.KeyFile,
		"--kubeconfig="+suite.cp.KubeconfigPath(),
	)
	logPath := filepath.Join(suite.dir, "reference-args.log")
	p, err := webhookproc.Start(webhookproc.Options{
		Binary: suite.binary, Exact: args, Port: port, LogPath: logPath, StopTimeout: stopTimeout,
		// The trust check is on by default: keep its AWS calls on this machine (nothing answers).
		Env: []string{"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_REGION=us-east-1",
			"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})

	// Registered as the reference's deploy/mutatingwebhook.yaml registers it (path /mutate,
	// pod CREATE, the skip label), at the process's loopback URL, and only for the namespace
	// the suite's own webhook excludes, so that this process alone mutates there.
	url := p.URL("/mutate")
	fail := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-identity-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "pod-identity-webhook.amazonaws.com",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: suite.tls.CAPEM},
			AdmissionReviewVersions: []string{"v1beta1"}, // as the reference's file says
			SideEffects:             &sideEffects,
			FailurePolicy:           &fail, // the reference's is Ignore: Fail shows a broken call as an error
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "eks.amazonaws.com/skip-pod-identity-webhook", Operator: metav1.LabelSelectorOpDoesNotExist}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: excludedNamespace}},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("register the webhook: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, cfg.Name, metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete webhook configuration: %v", err)
		}
	})
	createServiceAccount(t, cs, excludedNamespace, "reference-args", withRole(testRoleARN))

	// Until the process serves and the API server has the configuration: a dry-run pod
	// comes back with the role.
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		got, err := cs.CoreV1().Pods(excludedNamespace).Create(ctx, simplePod("reference-args", "reference-args"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			if v, _ := envValue(got.Spec.Containers[0], irsa.EnvRoleARN); v == testRoleARN && hasEnv(got.Spec.Containers[0], irsa.EnvWebIdentityTokenFile) {
				break
			}
			err = errors.New("pod came back without the role")
		}
		last = err
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("no pod mutated through /mutate: %v%s", last, p.LogTail())
		}
		time.Sleep(pollEvery)
	}

	// The reference's flags said what became of them.
	logs, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"no subcommand: serving with the reference webhook's defaults"`,
		`"flag":"--in-cluster","use":"--cert-mode"`,
		`"flag":"--namespace","use":"--cert-namespace, --config-map-namespace"`,
		`"flag":"--service-name","use":"--cert-service-name"`,
		`"flag":"--tls-cert","use":"--tls-cert-file"`,
		`"flag":"--metrics-port","use":"--metrics-bind-address"`,
		`"msg":"flag of the reference webhook ignored","flag":"--logtostderr"`,
	} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("log lacks %s%s", want, p.LogTail())
		}
	}

	// Probes on the webhook's port, as the reference's /healthz; metrics on --metrics-port,
	// behind authentication.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(suite.tls.CAPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusOK} {
		if code := status(t, client, p.URL(path)); code != want {
			t.Errorf("GET %s on the webhook's port: %d, want %d", path, code, want)
		}
	}
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // only asks whether the port answers
	if code := status(t, insecure, fmt.Sprintf("https://127.0.0.1:%d/metrics", metricsPort)); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("GET /metrics on --metrics-port without a token: %d, want 401 or 403", code)
	}
}

func status(t *testing.T, c *http.Client, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
