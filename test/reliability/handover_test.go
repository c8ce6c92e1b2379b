package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// TestSelfManagedCAHandover runs the chart's default certificate mode (--cert-mode=self-managed)
// as two replicas behind one address (a TCP forwarder standing in for the Service: each new
// connection goes to the next ready replica), registered with failurePolicy Fail and an empty
// caBundle, and replaces the CA while pods are created through the API server, which calls the
// webhook through the caBundle the replicas write.
//
// Replica A starts with the chart's defaults: it creates the CA and writes the caBundle. Replica
// B starts as a rolling update would, with a certificate lifetime whose renewal window makes
// A's CA due (the path a CA's natural renewal takes): it replaces the CA, writes the new and
// the old CA into the caBundle, and serves a certificate of the new CA while A still serves one
// of the old. No pod admission may fail, and the API server must have had pods admitted by
// both replicas after the new CA was written.
func TestSelfManagedCAHandover(t *testing.T) {
	const (
		drill      = "handover"
		workers    = 4  // creating pods through the API server from the start
		burst      = 12 // more, once B has joined: the API server must open new connections
		maxPerW    = 100000
		warmup     = 20 // pods admitted by A alone
		perReplica = 10 // pods each replica admits after the handover
		// caDue is how long after A creates its CA that CA is due for B.
		caDue = 3 * time.Second
	)
	ctx := t.Context()
	ns := drillNamespace(t, drill)
	name := "irsa-rel-" + drill
	// What the chart creates: the empty Secret and a configuration without caBundle.
	if _, err := suite.Admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-tls"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fwd := harness.NewForwarder(t)
	cfg := webhookproc.PodWebhookConfiguration(name, "https://localhost:"+strings.Split(fwd.Addr(), ":")[1]+webhookproc.PodPath, nil, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = drillSelector(drill)
	if _, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	replica := func(extra ...string) *webhook {
		dir := suite.ProcessDir(t)
		return startWebhookWith(t, webhookproc.Options{
			// The chart's emptyDir, where the webhook writes the pair it serves.
			TLS: webhookproc.TLS{CertFile: filepath.Join(dir, "tls", "tls.crt"), KeyFile: filepath.Join(dir, "tls", "tls.key")},
			Args: append([]string{
				"--trust-check=off", "--cert-mode=self-managed", "--cert-secret-name=" + name + "-tls", "--cert-namespace=" + ns,
				// The API server calls https://localhost:PORT here instead of the Service.
				"--cert-dns-names=localhost", "--mutating-webhook-configuration=" + name,
			}, extra...),
		})
	}
	backend := func(w *webhook) string { return strings.TrimSuffix(strings.TrimPrefix(w.URL(""), "https://"), "/") }

	a := replica()
	caCreated := time.Now()
	fwd.SetBackends(backend(a))
	createServiceAccount(t, suite.Admin, ns, "app", testRoleARN)
	waitMutating(t, ns, "app", a)

	var admitted atomic.Int64
	createPod := func(ctx context.Context, _ int) error {
		p := simplePod("", "app")
		p.GenerateName = "load-"
		p, err := suite.Admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) {
			err = fmt.Errorf("pod admitted without %s", irsa.EnvRoleARN)
		}
		if err == nil {
			admitted.Add(1)
		}
		return err
	}
	stop := make(chan struct{})
	loadDone := make(chan []shot, 2)
	go func() { loadDone <- load(ctx, workers, maxPerW, stop, createPod) }()
	bursting := false
	stopLoad := func() []shot {
		close(stop)
		shots := <-loadDone
		if bursting {
			shots = append(shots, <-loadDone...)
		}
		return shots
	}
	if err := poll(ctx, time.Minute, func() (bool, string) {
		return admitted.Load() >= warmup && time.Since(caCreated) > caDue+time.Second, fmt.Sprintf("%d pods admitted", admitted.Load())
	}); err != nil {
		stopLoad()
		t.Fatal(err)
	}

	rotatedAt := time.Now()
	b := replica("--cert-validity=" + (certs.DefaultCAValidity - caDue).String())
	fwd.SetBackends(backend(a), backend(b))
	// The API server keeps the connections it opened to A when B wrote the caBundle, before B
	// was ready, and more concurrent requests do not always make it open more. A caBundle
	// with the same two CAs in the other order is a new TLS configuration for it, so it opens
	// new connections, which the forwarder hands to A and B in turn: A's certificate (old CA)
	// and B's (new CA) are then both verified against the bundle B wrote.
	reorderCABundle(ctx, t, name)
	bursting = true
	go func() { loadDone <- load(ctx, burst, maxPerW, stop, createPod) }()
	mutated := func(w *webhook) float64 {
		return metricSum(scrape(t, w.MetricsURL()), "irsa_webhook_pod_mutations_total", `outcome="mutated"`)
	}
	a0, b0 := mutated(a), mutated(b)
	var da, db float64 // pods each replica admitted after B joined
	err := poll(ctx, time.Minute, func() (bool, string) {
		da, db = mutated(a)-a0, mutated(b)-b0
		return da >= perReplica && db >= perReplica, fmt.Sprintf("after the handover A admitted %v pods, B %v", da, db)
	})
	shots := stopLoad()
	if err != nil {
		t.Errorf("both replicas must serve the API server after the handover: %v (connections A %d, B %d)", err, fwd.Connections(backend(a)), fwd.Connections(backend(b)))
	}
	if f := failures(shots, time.Time{}); len(f) > 0 {
		t.Errorf("%d of %d pod admissions failed (times relative to B's start):%s", len(f), len(shots), describe(f, rotatedAt))
	}

	// The handover happened as described: the caBundle holds the new and the old CA, B serves
	// a certificate of the new (the Secret's) CA and A one of the old.
	sec, err := suite.Admin.CoreV1().Secrets(ns).Get(ctx, name+"-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current, err := harness.Certificate(sec.Data[certs.SecretKeyCACert])
	if err != nil {
		t.Fatal(err)
	}
	got, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle := got.Webhooks[0].ClientConfig.CABundle
	inBundle, err := harness.Certificates(bundle)
	if err != nil || len(inBundle) != 2 {
		t.Fatalf("caBundle: %d certificates (%v), want the new and the old CA", len(inBundle), err)
	}
	issuerA, issuerB := servedIssuer(t, a, bundle), servedIssuer(t, b, bundle)
	switch {
	case issuerB != current.Subject.CommonName:
		t.Errorf("B serves a certificate of %q, want one of the Secret's CA %q", issuerB, current.Subject.CommonName)
	case issuerA == issuerB:
		t.Errorf("A and B both serve certificates of %q: the CA was not replaced", issuerA)
	}
	t.Logf("%d pod admissions through the API server, %d failed; after B joined A admitted %v and B %v; A serves a certificate of %s, B of %s; connections A %d, B %d",
		len(shots), len(failures(shots, time.Time{})), da, db, issuerA, issuerB, fwd.Connections(backend(a)), fwd.Connections(backend(b)))
}

// servedIssuer is the issuer's common name of the certificate w serves, verified against
// bundle for localhost.
func servedIssuer(t *testing.T, w *webhook, bundle []byte) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	addr := strings.TrimSuffix(strings.TrimPrefix(w.URL(""), "https://"), "/")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("handshake with %s verified against the caBundle: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Issuer.CommonName
}

// reorderCABundle writes the caBundle of configuration name's webhooks with its CAs in the
// reverse order.
func reorderCABundle(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	api := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i := range c.Webhooks {
			var blocks [][]byte
			for rest := c.Webhooks[i].ClientConfig.CABundle; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				blocks = append(blocks, pem.EncodeToMemory(b))
			}
			slices.Reverse(blocks)
			c.Webhooks[i].ClientConfig.CABundle = bytes.Join(blocks, nil)
		}
		_, err = api.Update(ctx, c, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("reorder the caBundle of %s: %v", name, err)
	}
}
