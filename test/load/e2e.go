package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/procfs"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// The end-to-end measurement registers every webhook once, each selecting its own
// namespace by label, and creates the same pod in identical namespaces (same
// ServiceAccounts) in a shuffled order per round, so that every arm sees the same etcd
// size, API server warm-up and machine load. Arms:
//
//	plain   no webhook matches the namespace
//	irsa    this webhook, ServiceAccount with a role: mutated
//	norole  this webhook, ServiceAccount without a role: called, nothing to inject
//	fixed   a trivial in-process webhook answering the patch this webhook returns for the
//	        same pod, precomputed: what any webhook making this change costs the API server
//	small   the trivial webhook answering a one-operation patch (one env var): any mutation
//	empty   the trivial webhook answering allowed without a patch: the bare call
//	empty1  the same over HTTP/1.1, as the API server talks to a webhook behind a Service
//	        (it uses HTTP/2 only for a loopback URL, as here)
//	ref     with -reference: the reference webhook (aws/amazon-eks-pod-identity-webhook)
const e2eArmLabel = "irsa-load-e2e-arm"

// smallEnv is the variable the small arm's one-operation patch adds to the first container.
const smallEnv = "IRSA_LOAD_SMALL"

type arm struct {
	name, namespace, serviceAccount string
	env                             string // the created pod's first container must have this variable, and neither of the others
	label                           string
}

var baseArms = []arm{
	{name: "plain", namespace: "e2e-plain", serviceAccount: "s3-writer", label: "without a webhook"},
	{name: "irsa", namespace: "e2e-irsa", serviceAccount: "s3-writer", env: "AWS_ROLE_ARN", label: "with the webhook"},
	{name: "norole", namespace: "e2e-irsa", serviceAccount: "no-role", label: "webhook, nothing to inject (SA without a role)"},
	{name: "fixed", namespace: "e2e-fixed", serviceAccount: "s3-writer", env: "AWS_ROLE_ARN", label: "trivial webhook, the same patch precomputed"},
	{name: "small", namespace: "e2e-small", serviceAccount: "s3-writer", env: smallEnv, label: "trivial webhook, one-operation patch"},
	{name: "empty", namespace: "e2e-empty", serviceAccount: "s3-writer", label: "trivial webhook, no patch"},
	{name: "empty1", namespace: "e2e-empty1", serviceAccount: "s3-writer", label: "trivial webhook, no patch, HTTP/1.1"},
}

// refArm is the reference webhook's arm, with -reference.
var refArm = arm{name: "ref", namespace: "e2e-ref", serviceAccount: "s3-writer", env: "AWS_ROLE_ARN", label: "the reference webhook"}

// arms are the arms measured: baseArms, and the reference's with -reference.
func (e *env) arms() []arm {
	if e.ref != nil {
		return append(slices.Clip(baseArms), refArm)
	}
	return baseArms
}

type e2eOptions struct {
	pods    int           // measured pods per arm
	warmup  int           // uncounted rounds first
	window  time.Duration // per-arm CPU attribution window; 0 skips it
	profile string        // directory for kube-apiserver CPU profiles of each window
	seed    uint64
}

// endToEnd measures pod creation latency through the API server for every arm, then,
// unless o.window is 0, the CPU each arm costs kube-apiserver, etcd and the webhooks.
func (e *env) endToEnd(ctx context.Context, o e2eOptions) error {
	e2eArms := e.arms()
	pod, err := e.e2ePod()
	if err != nil {
		return err
	}
	if err := e.e2eNamespaces(ctx); err != nil {
		return err
	}
	fixedPatch, err := e.precomputePatch(ctx, pod)
	if err != nil {
		return err
	}
	var ops []json.RawMessage
	if err := json.Unmarshal(fixedPatch, &ops); err != nil {
		return fmt.Errorf("the webhook's patch: %w", err)
	}
	fmt.Printf("the webhook's patch of the pod: %d operations, %d bytes\n", len(ops), len(fixedPatch))
	trivial, err := startTrivialWebhook(e.tls, fixedPatch)
	if err != nil {
		return err
	}
	defer trivial.close()
	if err := e.registerE2EWebhooks(ctx, trivial); err != nil {
		return err
	}
	create := func(a arm, dryRun bool) (time.Duration, *corev1.Pod, error) {
		p := pod.DeepCopy()
		p.Namespace = a.namespace
		p.GenerateName = a.name + "-"
		p.Spec.ServiceAccountName, p.Spec.DeprecatedServiceAccount = a.serviceAccount, a.serviceAccount
		opts := metav1.CreateOptions{}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		began := time.Now()
		got, err := e.cs.CoreV1().Pods(a.namespace).Create(ctx, p, opts)
		d := time.Since(began)
		if err != nil {
			return 0, nil, fmt.Errorf("create pod (%s): %w", a.name, err)
		}
		return d, got, nil
	}
	// Let the API server pick the configurations up: dry-run pods come back as expected.
	for ready := false; !ready; {
		ready = true
		for _, a := range e2eArms {
			if _, got, err := create(a, true); err != nil || checkArm(a, got) != nil {
				ready = false
			}
		}
		if !ready {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var conns0 []string
	var calls0 map[string]callStats
	pods := make([]*corev1.Pod, len(e2eArms))
	rng := rand.New(rand.NewPCG(o.seed, 0))
	lat := make([][]time.Duration, len(e2eArms))
	mutated := make([]int, len(e2eArms))
	order := make([]int, len(e2eArms))
	for i := range order {
		order[i] = i
	}
	for round := range o.warmup + o.pods {
		if round == o.warmup {
			if conns0, err = tcpConnsTo(e.webhook.Options().Port); err != nil {
				return err
			}
			if calls0, err = e.webhookCalls(ctx); err != nil {
				return err
			}
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			d, got, err := create(e2eArms[i], false)
			if err != nil {
				return err
			}
			if err := checkArm(e2eArms[i], got); err != nil {
				return err
			}
			pods[i] = got
			if round >= o.warmup {
				lat[i] = append(lat[i], d)
				if e2eArms[i].env != "" {
					mutated[i]++
				}
			}
		}
	}
	// The fixed arm must make exactly this webhook's change.
	if a, b := specJSON(pods[1]), specJSON(pods[3]); a != b {
		return fmt.Errorf("the fixed arm's pod differs from the webhook's:\n%s\n%s", a, b)
	}
	calls1, err := e.webhookCalls(ctx)
	if err != nil {
		return err
	}
	conns1, err := tcpConnsTo(e.webhook.Options().Port)
	if err != nil {
		return err
	}
	fmt.Printf("%d pods per arm created one after another through the API server (etcd, admission, storage),\n", o.pods)
	fmt.Printf("arms interleaved in a shuffled order each round, after %d uncounted rounds; every pod checked:\n", o.warmup)
	for i, a := range e2eArms {
		fmt.Printf("  %-48s median %s, p90 %s, p99 %s (%d mutated)\n", a.label+":", pct(lat[i], .5), pct(lat[i], .9), pct(lat[i], .99), mutated[i])
	}
	base := lat[0]
	fmt.Printf("added to the median (difference of medians; median of the per-round differences):\n")
	for i, a := range e2eArms[1:] {
		d := make([]time.Duration, len(base))
		for r := range base {
			d[r] = lat[i+1][r] - base[r]
		}
		fmt.Printf("  %-48s %s; %s\n", a.label+":", pct(lat[i+1], .5)-pct(base, .5), pct(d, .5))
	}
	fmt.Printf("webhook calls during the measured rounds (%d pods per arm), as the API server times them (call and patch):%s\n", o.pods, callsDelta(calls0, calls1))
	fmt.Printf("connections to this webhook: %d before, %d after, %d in common; %s\n", len(conns0), len(conns1), common(conns0, conns1), trivial.protocols())
	if o.window > 0 {
		return e.e2eCPU(ctx, o, create)
	}
	return nil
}

// e2ePod is the benchmark pod as a client submits it: without the kube-api-access volume
// and mounts the API server's ServiceAccount plugin adds, and without an owner.
func (e *env) e2ePod() (*corev1.Pod, error) {
	y, err := os.ReadFile(filepath.Join(e.root, "webhook/pod/testdata/benchmark/pod.yaml"))
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal(y, &pod); err != nil {
		return nil, err
	}
	pod.Spec.Volumes = pod.Spec.Volumes[:1]
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].VolumeMounts = nil
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = pod.Spec.Containers[i].VolumeMounts[:0]
	}
	pod.OwnerReferences = nil
	return &pod, nil
}

// e2eNamespaces creates one namespace per arm, labelled with the arm, each holding the
// same two ServiceAccounts: s3-writer with the walkthrough's role and no-role.
func (e *env) e2eNamespaces(ctx context.Context) error {
	e2eArms := e.arms()
	seen := map[string]bool{}
	for _, a := range e2eArms {
		if seen[a.namespace] {
			continue
		}
		seen[a.namespace] = true
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: a.namespace, Labels: map[string]string{e2eArmLabel: a.namespace}}}
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
		for name, role := range map[string]string{"s3-writer": "arn:aws:iam::123456789012:role/S3WriterRole", "no-role": ""} {
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.namespace}}
			if role != "" {
				sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": role}
			}
			if _, err := e.cs.CoreV1().ServiceAccounts(a.namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// precomputePatch asks this webhook, directly, for its patch of the pod as the API server
// would send it in the fixed arm's namespace (the pod after a dry-run create there, before
// any webhook is registered, so with the ServiceAccount plugin's volume and mounts).
func (e *env) precomputePatch(ctx context.Context, pod *corev1.Pod) ([]byte, error) {
	p := pod.DeepCopy()
	p.Namespace = "e2e-fixed"
	p.GenerateName = "fixed-"
	got, err := e.cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return nil, err
	}
	got.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	obj, err := json.Marshal(got)
	if err != nil {
		return nil, err
	}
	review := fmt.Appendf(nil, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"e2e","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":%q,"operation":"CREATE","userInfo":{"username":"irsa-admin"},"object":%s}}`, p.Namespace, obj)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(e.tls.CAPEM) {
		return nil, errors.New("no CA certificate in the webhook's caBundle")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	client.Transport = tr
	defer tr.CloseIdleConnections()
	// The webhook's cache may not hold the new namespace's ServiceAccount yet: retry.
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.webhook.URL(webhookproc.PodPath), bytes.NewReader(review))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		_, patch, err := answer(body)
		if err != nil {
			return nil, err
		}
		if len(patch) > 0 {
			return patch, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registerE2EWebhooks registers this webhook for the irsa namespace only (otherwise as the
// chart does) and the trivial webhook's two entries for the fixed and empty namespaces.
func (e *env) registerE2EWebhooks(ctx context.Context, t *trivialWebhook) error {
	only := func(ns string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{e2eArmLabel: ns}}
	}
	cfg := webhookproc.PodWebhookConfiguration("irsa-webhook-load", e.webhook.URL(webhookproc.PodPath), e.tls.CAPEM, admissionregistrationv1.Fail)
	cfg.Webhooks[0].NamespaceSelector = only("e2e-irsa")
	triv := webhookproc.PodWebhookConfiguration("trivial-load", "", e.tls.CAPEM, admissionregistrationv1.Fail)
	tmpl := triv.Webhooks[0]
	triv.Webhooks = nil
	for _, a := range baseArms[3:] { // the trivial webhook's arms
		w := *tmpl.DeepCopy()
		url := t.url(a.name)
		w.Name, w.ClientConfig.URL, w.NamespaceSelector = a.name+".trivial.irsa-load", &url, only(a.namespace)
		triv.Webhooks = append(triv.Webhooks, w)
	}
	configs := []*admissionregistrationv1.MutatingWebhookConfiguration{cfg, triv}
	if e.ref != nil {
		// As that project deploys it: its answers carry no apiVersion and kind, which the API
		// server accepts only from a webhook registered for admission.k8s.io/v1beta1 reviews.
		ref := webhookproc.PodWebhookConfiguration("reference-load", e.ref.URL(), e.tls.CAPEM, admissionregistrationv1.Fail)
		ref.Webhooks[0].Name = "ref.reference.irsa-load"
		ref.Webhooks[0].NamespaceSelector = only(refArm.namespace)
		ref.Webhooks[0].AdmissionReviewVersions = []string{"v1beta1"}
		configs = append(configs, ref)
	}
	for _, c := range configs {
		if _, err := e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// checkArm checks the arm's pod was mutated by its webhook, and only by it.
func checkArm(a arm, p *corev1.Pod) error {
	for _, name := range []string{"AWS_ROLE_ARN", smallEnv} {
		has := slices.ContainsFunc(p.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if has != (name == a.env) {
			return fmt.Errorf("arm %s: pod %s has %s: %v", a.name, p.Name, name, has)
		}
	}
	return nil
}

var kubeAPIAccess = regexp.MustCompile(`kube-api-access-[a-z0-9]+`)

// specJSON is the pod's spec with the ServiceAccount plugin's random volume name replaced.
func specJSON(p *corev1.Pod) string {
	b, _ := json.Marshal(p.Spec)
	return kubeAPIAccess.ReplaceAllString(string(b), "kube-api-access")
}

func pct(l []time.Duration, q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// trivialWebhook answers every AdmissionReview with a fixed response; it reads only the
// request's UID. /fixed answers the patch it was given, /small a one-operation patch, /empty
// and /empty1 none; /empty1 is served on a second port that offers only HTTP/1.1.
type trivialWebhook struct {
	h2, h1 net.Listener
	srv    []*http.Server
	proto  [2]atomic.Int64 // requests over HTTP/1.x, over HTTP/2
}

func startTrivialWebhook(t webhookproc.TLS, patch []byte) (*trivialWebhook, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	w := &trivialWebhook{}
	if w.h2, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if w.h1, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		w.h2.Close()
		return nil, err
	}
	small := fmt.Appendf(nil, `[{"op":"add","path":"/spec/containers/0/env/-","value":{"name":%q,"value":"1"}}]`, smallEnv)
	mux := http.NewServeMux()
	answer := func(patch []byte) http.HandlerFunc {
		extra := ""
		if patch != nil {
			extra = `,"patchType":"JSONPatch","patch":"` + base64.StdEncoding.EncodeToString(patch) + `"`
		}
		return func(rw http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 {
				w.proto[1].Add(1)
			} else {
				w.proto[0].Add(1)
			}
			var in struct {
				Request struct {
					UID string `json:"uid"`
				} `json:"request"`
			}
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
				http.Error(rw, err.Error(), http.StatusBadRequest)
				return
			}
			rw.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(rw, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%q,"allowed":true%s}}`, in.Request.UID, extra)
		}
	}
	mux.Handle("/fixed", answer(patch))
	mux.Handle("/small", answer(small))
	mux.Handle("/empty", answer(nil))
	mux.Handle("/empty1", answer(nil))
	for _, l := range []struct {
		ln    net.Listener
		proto []string
	}{{w.h2, []string{"h2", "http/1.1"}}, {w.h1, []string{"http/1.1"}}} {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: l.proto}}
		if len(l.proto) == 1 {
			srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no HTTP/2
		}
		w.srv = append(w.srv, srv)
		go func() { _ = srv.ServeTLS(l.ln, "", "") }()
	}
	return w, nil
}

// url is the URL of an arm's answer: /empty1 on the HTTP/1.1 port, the others on the other.
func (w *trivialWebhook) url(arm string) string {
	ln := w.h2
	if arm == "empty1" {
		ln = w.h1
	}
	return "https://" + ln.Addr().String() + "/" + arm
}

func (w *trivialWebhook) protocols() string {
	return fmt.Sprintf("requests to the trivial webhook: %d over HTTP/1.x, %d over HTTP/2", w.proto[0].Load(), w.proto[1].Load())
}

func (w *trivialWebhook) close() {
	for _, s := range w.srv {
		_ = s.Close()
	}
}

// callStats is a histogram's count and sum (seconds).
type callStats struct{ count, sum float64 }

// webhookCalls reads apiserver_admission_webhook_admission_duration_seconds by webhook name
// (how often, and how long in total, the API server spent calling each webhook, its patch
// applied) and, under the name "irsa-webhook (own handling)", the webhook's own
// irsa_webhook_admission_duration_seconds for pods.
func (e *env) webhookCalls(ctx context.Context) (map[string]callStats, error) {
	body, err := e.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver /metrics: %w", err)
	}
	calls := map[string]callStats{}
	if err := histograms(string(body), "apiserver_admission_webhook_admission_duration_seconds", "name", calls); err != nil {
		return nil, err
	}
	_, own, err := webhookproc.GetAll(ctx, e.webhook.MetricsURL())
	if err != nil {
		return nil, err
	}
	ownStats := map[string]callStats{}
	if err := histograms(own, "irsa_webhook_admission_duration_seconds", "webhook", ownStats); err != nil {
		return nil, err
	}
	calls["irsa-webhook (own handling)"] = ownStats["pod"]
	return calls, nil
}

// histograms adds the _count and _sum of metric, by the value of label, to into.
func histograms(body, metric, label string, into map[string]callStats) error {
	for line := range strings.SplitSeq(body, "\n") {
		rest, ok := strings.CutPrefix(line, metric+"_")
		if !ok {
			continue
		}
		kind, rest, ok := strings.Cut(rest, "{")
		if !ok || (kind != "count" && kind != "sum") {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return err
		}
		name := labelValue(labels, label)
		c := into[name]
		if kind == "count" {
			c.count += v
		} else {
			c.sum += v
		}
		into[name] = c
	}
	return nil
}

func labelValue(labels, name string) string {
	_, v, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

func callsDelta(a, b map[string]callStats) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(b)) {
		n, sum := b[name].count-a[name].count, b[name].sum-a[name].sum
		mean := time.Duration(0)
		if n > 0 {
			mean = time.Duration(sum / n * float64(time.Second)).Round(time.Microsecond)
		}
		parts = append(parts, fmt.Sprintf("\n  %-48s %5.0f calls, mean %s", name+":", n, mean))
	}
	return strings.Join(parts, "")
}

// tcpConnsTo lists the established loopback TCP connections whose local port is port
// (the webhook's side), as "remote-port" strings, from /proc/net/tcp.
func tcpConnsTo(port int) ([]string, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf(":%04X", port)
	var conns []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "01" { // 01: ESTABLISHED
			continue
		}
		if strings.HasSuffix(f[1], want) {
			conns = append(conns, f[2])
		}
	}
	return conns, nil
}

func common(a, b []string) int {
	n := 0
	for _, x := range a {
		if slices.Contains(b, x) {
			n++
		}
	}
	return n
}

// e2eCPU creates pods of one arm at a time for o.window each and reports, per pod, the
// CPU time of kube-apiserver, etcd, this webhook and this process (client and trivial
// webhook), from /proc/PID/stat; with o.profile, also a kube-apiserver CPU profile of
// each window.
func (e *env) e2eCPU(ctx context.Context, o e2eOptions, create func(arm, bool) (time.Duration, *corev1.Pod, error)) error {
	api, etcd, err := controlPlanePIDs()
	if err != nil {
		return err
	}
	pids := []struct {
		name string
		pid  int
	}{{"kube-apiserver", api}, {"etcd", etcd}, {"irsa-webhook", e.webhook.PID()}, {"load (client, trivial webhook)", os.Getpid()}}
	if e.ref != nil {
		pids = append(pids, struct {
			name string
			pid  int
		}{"reference webhook", e.ref.PID()})
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	fmt.Printf("CPU per pod, each arm alone for %s (from /proc/PID/stat, 10 ms ticks):\n", o.window)
	fmt.Printf("  %-8s %6s %9s", "arm", "pods", "median")
	for _, p := range pids {
		fmt.Printf(" %16s", p.name)
	}
	fmt.Println()
	for _, a := range e.arms() {
		var profiled chan error
		if o.profile != "" {
			profiled = make(chan error, 1)
			go func() {
				profiled <- e.apiServerProfile(ctx, filepath.Join(o.profile, "kube-apiserver-"+a.name+".pprof"), o.window)
			}()
		}
		before := make([]int64, len(pids))
		for i, p := range pids {
			if before[i], err = procfs.CPUTicks(p.pid); err != nil {
				return err
			}
		}
		var lat []time.Duration
		deadline := time.Now().Add(o.window)
		for time.Now().Before(deadline) {
			d, got, err := create(a, false)
			if err != nil {
				return err
			}
			if err := checkArm(a, got); err != nil {
				return err
			}
			lat = append(lat, d)
		}
		fmt.Printf("  %-8s %6d %9s", a.name, len(lat), pct(lat, .5).Round(time.Microsecond))
		for i, p := range pids {
			t, err := procfs.CPUTicks(p.pid)
			if err != nil {
				return err
			}
			fmt.Printf(" %13.0f µs", float64(t-before[i])/clockTicks*1e6/float64(len(lat)))
		}
		fmt.Println()
		if profiled != nil {
			if err := <-profiled; err != nil {
				return err
			}
		}
	}
	if o.profile != "" {
		fmt.Printf("kube-apiserver CPU profiles of each window in %s (go tool pprof -top -diff_base kube-apiserver-plain.pprof kube-apiserver-irsa.pprof)\n", o.profile)
	}
	return nil
}

// apiServerProfile fetches a CPU profile of kube-apiserver over d (/debug/pprof/profile,
// served while --profiling is on, its default).
func (e *env) apiServerProfile(ctx context.Context, path string, d time.Duration) error {
	body, err := e.cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", strconv.Itoa(int(d.Seconds()))).DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver CPU profile: %w", err)
	}
	return os.WriteFile(path, body, 0o644)
}

// controlPlanePIDs finds this process's kube-apiserver and etcd children.
func controlPlanePIDs() (api, etcd int, err error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0, err
	}
	self := os.Getpid()
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(string(b[close+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		switch string(b[open+1 : close]) {
		case "kube-apiserver":
			api = pid
		case "etcd":
			etcd = pid
		}
	}
	if api == 0 || etcd == 0 {
		return 0, 0, errors.New("kube-apiserver or etcd not found among this process's children")
	}
	return api, etcd, nil
}
