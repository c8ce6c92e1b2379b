// Package reliability_test runs the reliability and security drills of the irsa-webhook binary
// against a real etcd and kube-apiserver: the control plane restarted under load, SIGTERM
// under load, the serving certificate replaced under load, IAM down, slow and throttling; the
// chart's RBAC applied and impersonated, TLS versions and cipher suites, what the logs hold,
// --allowed-role-accounts and --excluded-namespaces. docs/reliability.md records the results.
//
// Every drill starts its own webhook process (the flags differ) and registers webhook
// configurations that select only namespaces labelled with the drill's name, so drills never
// see each other's webhooks. Tests run one after the other: TestAPIServerRestart restarts the
// shared kube-apiserver, and the load drills need the two cores to themselves.
package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	// testIssuer is the service-account issuer; trust policies name it.
	testIssuer = "https://oidc.irsa-reliability.test/id/RELIABILITY"
	// drillLabel on a namespace names the drill whose webhook configurations select it.
	drillLabel   = "irsa-reliability.test/drill"
	testAccount  = iamserver.CallerAccount // the account of the IAM endpoint's credentials
	testRoleARN  = "arn:aws:iam::" + testAccount + ":role/ReliabilityRole"
	readyTimeout = harness.ReadyTimeout
	// webhookCallTimeout bounds one request of a test client to the webhook.
	webhookCallTimeout = 10 * time.Second
)

// suite is what TestMain set up; tests run sequentially.
var suite *harness.Suite

func TestMain(m *testing.M) {
	opts := harness.Options{Name: "reliability", ControlPlane: controlplane.Options{
		IssuerURL: testIssuer,
		// By default kube-apiserver does not end open watches on SIGTERM: its HTTP server waits
		// for them until the request timeout (60s), past RestartAPIServer's 20s stop timeout.
		// Any informer holds one (the webhook's ServiceAccount cache does), so have the API
		// server close them, as managed control planes configure it.
		APIServerFlags: map[string]string{"shutdown-watch-termination-grace-period": "5s"},
	}}
	os.Exit(harness.Main(opts, func(s *harness.Suite) int {
		suite = s
		return m.Run()
	}))
}

// webhook is a running irsa-webhook serve with the serving certificate it was given.
type webhook struct {
	*webhookproc.Process
	tls webhookproc.TLS
}

// startWebhook starts `irsa-webhook serve` with args (after the standard loopback flags) and
// env, waits until it is ready and stops it when the test ends.
func startWebhook(t *testing.T, args, env []string) *webhook {
	t.Helper()
	return startWebhookWith(t, webhookproc.Options{Args: args, Env: env})
}

// startWebhookWith starts the webhook with opts (see harness.StartWebhook).
func startWebhookWith(t *testing.T, opts webhookproc.Options) *webhook {
	t.Helper()
	// Drills that are not about shutdown need not wait the 5s default delay when they stop;
	// later arguments override this one.
	opts.Args = append([]string{"--shutdown-delay=0s"}, opts.Args...)
	opts.StopTimeout = 15 * time.Second
	p := suite.StartWebhook(t, opts)
	return &webhook{Process: p, tls: p.Options().TLS}
}

// iamEnv configures the real AWS SDK in the webhook the way users do, through the
// environment, pointed at the local IAM endpoint, with the given secret key (registered with
// it: its STS verifies GetCallerIdentity's signature, which tells the webhook its account).
func iamEnv(t *testing.T, iam *iamserver.Server, secretAccessKey string) []string {
	return iam.ClientEnv(suite.TestDir(t), "AKIDRELIABILITY", secretAccessKey)
}

// newIAM starts a local IAM endpoint for one test.
func newIAM(t *testing.T) *iamserver.Server {
	s := iamserver.New()
	t.Cleanup(s.Close)
	return s
}

// trustPolicy is the minimal trust policy of role for ns/sa on this cluster.
func trustPolicy(t *testing.T, role, ns, sa string) string {
	t.Helper()
	doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: role, IssuerURL: testIssuer, Namespace: ns, ServiceAccount: sa, Audience: controlplane.AudienceSTS})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// drillNamespace creates a namespace labelled for drill (the webhook configurations of the
// drill select it). Without a namespace controller a deleted namespace only turns
// Terminating, so namespaces are left behind with the throwaway control plane.
func drillNamespace(t *testing.T, drill string) string {
	t.Helper()
	ns, err := suite.Admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "rel-" + drill + "-", Labels: map[string]string{drillLabel: drill},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace for drill %s: %v", drill, err)
	}
	return ns.Name
}

// drillSelector selects the namespaces of drill.
func drillSelector(drill string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{drillLabel: drill}}
}

// registerPodWebhook registers w's pod webhook for the namespaces of drill (failurePolicy Fail:
// a webhook failure is an error, not an unmutated pod), deletes the configuration when the
// test ends, and waits until the API server calls it.
func registerPodWebhook(t *testing.T, drill string, w *webhook) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	cfg := webhookproc.PodWebhookConfiguration("irsa-rel-"+drill, w.URL(webhookproc.PodPath), w.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = drillSelector(drill)
	created, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), cfg, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("register pod webhook: %v", err)
	}
	t.Cleanup(func() {
		_ = suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
	ns := drillNamespace(t, drill)
	createServiceAccount(t, suite.Admin, ns, "probe", testRoleARN)
	waitMutating(t, ns, "probe", w)
	return created
}

// registerServiceAccountWebhook registers w's trust check for the namespaces of drill.
func registerServiceAccountWebhook(t *testing.T, drill string, w *webhook) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	cfg := webhookproc.ServiceAccountWebhookConfiguration("irsa-rel-"+drill, w.URL(webhookproc.ServiceAccountPath), w.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = drillSelector(drill)
	created, err := suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), cfg, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("register serviceaccount webhook: %v", err)
	}
	t.Cleanup(func() {
		_ = suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
	// Wait until the API server calls it: a dry-run ServiceAccount with a role gets a warning
	// (or a denial) from the trust check, whatever IAM says.
	ns := drillNamespace(t, drill)
	cs, warnings := warningClient(t)
	err = poll(t.Context(), readyTimeout, func() (bool, string) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), serviceAccount("probe", "arn:aws:iam::"+testAccount+":role/Probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if len(warnings.Take("")) > 0 || (err != nil && strings.Contains(err.Error(), "irsa-webhook")) {
			return true, ""
		}
		return false, fmt.Sprintf("dry-run serviceaccount: err %v, no warning", err)
	})
	if err != nil {
		t.Fatalf("the API server does not call the trust check: %v%s", err, w.LogTail())
	}
	return created
}

// waitMutating polls dry-run pod creations in ns with sa until the webhook mutates them.
func waitMutating(t *testing.T, ns, sa string, w *webhook) {
	t.Helper()
	err := poll(t.Context(), readyTimeout, func() (bool, string) {
		p, err := suite.Admin.CoreV1().Pods(ns).Create(t.Context(), simplePod("probe", sa), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			return false, err.Error()
		case !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN):
			return false, "dry-run pod came back without " + irsa.EnvRoleARN
		}
		return true, ""
	})
	if err != nil {
		t.Fatalf("the API server does not call the pod webhook: %v%s", err, w.LogTail())
	}
}

// Short names for the harness's helpers, used throughout this package.
var (
	roleAnnotation = harness.RoleAnnotation
	poll           = harness.Poll
	serviceAccount = harness.ServiceAccount
	simplePod      = harness.SimplePod
	hasEnv         = harness.HasEnv
	hasTokenVolume = harness.HasTokenVolume
)

func createServiceAccount(t *testing.T, cs kubernetes.Interface, ns, name, role string) {
	t.Helper()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), serviceAccount(name, role), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create serviceaccount %s/%s: %v", ns, name, err)
	}
}

// warningClient returns an admin clientset whose warnings are collected.
func warningClient(*testing.T) (*kubernetes.Clientset, *controlplane.Warnings) {
	return suite.WarningClient()
}

// Direct admission requests, as the API server sends them.

// uids numbers the admission requests of this process.
var uids atomic.Int64

// podReview returns an AdmissionReview v1 request for creating p in ns, with a new UID.
func podReview(ns string, p *corev1.Pod) (uid string, body []byte) {
	p = p.DeepCopy()
	p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	p.Namespace = ns
	raw, err := json.Marshal(p)
	if err != nil {
		panic(err) // a corev1.Pod always encodes
	}
	uid = "rel-" + strconv.FormatInt(uids.Add(1), 10)
	rv := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(uid),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	body, err = json.Marshal(&rv)
	if err != nil {
		panic(err)
	}
	return uid, body
}

// answer is the webhook's reply to one review.
type answer struct {
	allowed  bool
	patched  bool
	warnings []string
	tls      *tls.ConnectionState
}

// reviewClient POSTs AdmissionReviews to a webhook over HTTPS.
type reviewClient struct {
	http  *http.Client
	url   string
	dials atomic.Int64 // TCP connections opened
}

// newReviewClient trusts the given CAs. keepAlive false makes every request a new connection
// and TLS handshake.
func newReviewClient(url string, keepAlive bool, caPEMs ...[]byte) *reviewClient {
	pool := x509.NewCertPool()
	for _, ca := range caPEMs {
		pool.AppendCertsFromPEM(ca)
	}
	c := &reviewClient{url: url}
	dialer := &net.Dialer{Timeout: webhookCallTimeout}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	c.http = &http.Client{Transport: tr, Timeout: webhookCallTimeout}
	return c
}

func (c *reviewClient) close() { c.http.CloseIdleConnections() }

// post sends one review; any answer but HTTP 200 with a response for the same UID is an error.
func (c *reviewClient) post(ctx context.Context, uid string, body []byte) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &rv); err != nil {
		return answer{}, fmt.Errorf("decode answer: %w", err)
	}
	if rv.Response == nil || string(rv.Response.UID) != uid {
		return answer{}, fmt.Errorf("answer is not for request %s: %s", uid, data)
	}
	return answer{allowed: rv.Response.Allowed, patched: len(rv.Response.Patch) > 0, warnings: rv.Response.Warnings, tls: resp.TLS}, nil
}

// mutate posts a review for p in ns and wants it allowed and patched.
func (c *reviewClient) mutate(ctx context.Context, ns string, p *corev1.Pod) (answer, error) {
	uid, body := podReview(ns, p)
	a, err := c.post(ctx, uid, body)
	switch {
	case err != nil:
		return a, err
	case !a.allowed:
		return a, errors.New("pod denied")
	case !a.patched:
		return a, fmt.Errorf("pod not mutated (warnings %q)", a.warnings)
	}
	return a, nil
}

// shot is one request of a load generator.
type shot struct {
	start, end time.Time
	err        error
}

// load runs workers goroutines, each calling do until stop is closed, ctx ends or it made
// maxPerWorker calls, and returns every call made.
func load(ctx context.Context, workers, maxPerWorker int, stop <-chan struct{}, do func(ctx context.Context, worker int) error) []shot {
	results := make([][]shot, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range maxPerWorker {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				s := shot{start: time.Now()}
				s.err = do(ctx, w)
				s.end = time.Now()
				results[w] = append(results[w], s)
			}
		})
	}
	wg.Wait()
	return slices.Concat(results...)
}

// failures returns the failed shots that started before cutoff (all, when cutoff is zero).
func failures(shots []shot, cutoff time.Time) []shot {
	var out []shot
	for _, s := range shots {
		if s.err != nil && (cutoff.IsZero() || s.start.Before(cutoff)) {
			out = append(out, s)
		}
	}
	return out
}

// describe summarizes failed shots for an error message.
func describe(fails []shot, t0 time.Time) string {
	var b strings.Builder
	for i, s := range fails {
		if i == 5 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(fails)-i)
			break
		}
		fmt.Fprintf(&b, "\n  at %+.3fs: %v", s.start.Sub(t0).Seconds(), s.err)
	}
	return b.String()
}

// Metrics, from Prometheus' text format. Scanned by hand rather than with prometheus/common's
// expfmt (an indirect dependency only): the drills only add up the samples of one counter
// whose label set contains given pairs, a few lines of text matching.

// scrape returns the text of a /metrics endpoint.
func scrape(t *testing.T, url string) string {
	t.Helper()
	code, body, err := webhookproc.GetAll(t.Context(), url)
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %d, %v", url, code, err)
	}
	return body
}

// metricSum adds the samples of metric whose labels include every one of labels
// (`name="value"` strings).
func metricSum(text, metric string, labels ...string) float64 {
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, metric)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if !allContained(rest, labels) {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndex(rest, "}")+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func allContained(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// logLines returns the webhook's log, line by line.
func logLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read webhook log: %v", err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

// panicLines are log lines that tell of a panic.
func panicLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		low := strings.ToLower(l)
		if strings.Contains(low, "panic") || strings.HasPrefix(l, "goroutine ") || strings.Contains(low, "fatal error") {
			out = append(out, l)
		}
	}
	return out
}
