// Command load measures the webhook the way the performance issue asks: the real binary,
// out of cluster, against a real kube-apiserver holding N ServiceAccounts, driven over TLS
// with keep-alive (HTTP/1.1, as the API server calls a webhook behind a Service) by vegeta (a maintained load tool, built from the module proxy) with a
// realistic AdmissionReview (webhook/pod/testdata/benchmark/pod.yaml: 2 containers and an
// init container). It reports throughput, latency percentiles, errors, the server's CPU per
// request (from /proc/PID/stat) and its memory.
//
//	go run ./test/load [-service-accounts 2001] [-duration 20s] [-rate 500] [-workers 32]
//	go run ./test/load -memory -service-accounts 100000   # heap per ServiceAccount
//	go run ./test/load -e2e 2000 [-e2e-profile DIR]        # pod creation through the API server
//	go run ./test/load -reference PATH [...]               # and the reference webhook side by side
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/procfs"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's utime and stime: 100 on Linux.
const clockTicks = 100

type options struct {
	serviceAccounts int
	duration        time.Duration
	rate            int
	workers         int
	memory          bool
	e2e             int
	e2eWarmup       int
	e2eWindow       time.Duration
	e2eProfile      string
	e2eSeed         uint64
	profile         string
	args            string
	reference       string
	binary          string
	generator       string
	pod             string
	http2           bool
}

func main() {
	var o options
	flag.IntVar(&o.serviceAccounts, "service-accounts", 2001, "ServiceAccounts in the cluster (one of them the pod's)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "length of each load phase")
	flag.IntVar(&o.rate, "rate", 500, "arrival rate of the fixed-rate phase, requests per second")
	flag.IntVar(&o.workers, "workers", 32, "connections of the closed-loop phase")
	flag.BoolVar(&o.memory, "memory", false, "measure memory per ServiceAccount instead of load: heap at 2,001 and at -service-accounts")
	flag.IntVar(&o.e2e, "e2e", 0, "instead of load: create this many pods per arm through the API server (no webhook, this webhook, trivial webhooks; interleaved) and compare the latencies")
	flag.IntVar(&o.e2eWarmup, "e2e-warmup", 100, "with -e2e: uncounted rounds (one pod per arm each) first")
	flag.DurationVar(&o.e2eWindow, "e2e-cpu-window", 10*time.Second, "with -e2e: then create pods of each arm alone for this long and report CPU per pod (0: skip)")
	flag.StringVar(&o.e2eProfile, "e2e-profile", "", "with -e2e: write a kube-apiserver CPU profile of each arm's CPU window to this directory")
	flag.Uint64Var(&o.e2eSeed, "e2e-seed", uint64(time.Now().UnixNano()), "with -e2e: seed of the per-round shuffle")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of the webhook during the closed-loop phase to this file")
	flag.StringVar(&o.args, "args", "", "extra serve flags, space-separated")
	flag.BoolVar(&o.http2, "http2", false, "load over HTTP/2; the default is HTTP/1.1, which the API server uses for every webhook behind a Service or at a non-loopback URL (k8s.io/apiserver pkg/util/webhook)")
	flag.StringVar(&o.generator, "generator", "vegeta", "load generator of the load phases: vegeta, or hey (a second, independent client)")
	flag.StringVar(&o.pod, "pod", "webhook/pod/testdata/benchmark/pod.yaml", "pod of the AdmissionReview, relative to the module root (another shape: webhook/pod/testdata/benchmark/pod-minimal.yaml)")
	flag.StringVar(&o.binary, "binary", "", "measure this prebuilt webhook binary instead of building ./cmd/irsa-webhook (an A/B against another commit's build; it must accept the serve flags test/webhookproc passes)")
	flag.StringVar(&o.reference, "reference", "", "also run the reference webhook (aws/amazon-eks-pod-identity-webhook, a binary built from its source) and measure it side by side: the same load phases, and an -e2e arm")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type env struct {
	dir     string
	cp      *controlplane.ControlPlane
	cs      *kubernetes.Clientset
	webhook *webhookproc.Process
	ref     *reference // the reference webhook, with -reference
	tls     webhookproc.TLS
	vegeta  string
	hey     string // with -generator hey: the hey binary
	pod     string // the pod of the AdmissionReview, relative to root
	http2   bool   // load over HTTP/2 rather than HTTP/1.1
	root    string
}

func run(ctx context.Context, o options) (err error) {
	e := &env{http2: o.http2, pod: o.pod}
	if e.root, err = webhookproc.ModuleRoot(ctx); err != nil {
		return err
	}
	if e.dir, err = os.MkdirTemp("", "irsa-load-"); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(e.dir) }()
	out, err := exec.CommandContext(ctx, filepath.Join(e.root, "test/tools/build-vegeta.sh")).Output()
	if err != nil {
		return fmt.Errorf("build vegeta: %w", err)
	}
	e.vegeta = filepath.Join(strings.TrimSpace(string(out)), "vegeta")
	switch o.generator {
	case "vegeta":
	case "hey":
		if e.hey, err = buildHey(ctx, e.root); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-generator %q: want vegeta or hey", o.generator)
	}
	binary := o.binary
	if binary == "" {
		binary = filepath.Join(e.dir, "irsa-webhook")
		if err := webhookproc.Build(ctx, e.root, binary); err != nil {
			return err
		}
	}
	if e.cp, err = controlplane.Start(ctx, controlplane.Options{}); err != nil {
		return err
	}
	defer func() { _ = e.cp.Stop() }()
	cfg := e.cp.Config()
	cfg.QPS, cfg.Burst = 2000, 2000
	if e.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	first := o.serviceAccounts
	if o.memory {
		first = 2001
	}
	began := time.Now()
	if err := e.createServiceAccounts(ctx, 0, first); err != nil {
		return err
	}
	fmt.Printf("created %d ServiceAccounts in %s\n", first, time.Since(began).Round(time.Second))
	if e.tls, err = webhookproc.WriteServingCert(e.dir, time.Now()); err != nil {
		return err
	}
	args := []string{"--trust-check=off", "--enable-profiling"}
	if o.args != "" {
		args = append(args, strings.Fields(o.args)...)
	}
	if e.webhook, err = webhookproc.Start(webhookproc.Options{Binary: binary, Kubeconfig: e.cp.KubeconfigPath(), TLS: e.tls,
		LogPath: filepath.Join(e.dir, "webhook.log"), Args: args}); err != nil {
		return err
	}
	defer func() { _ = e.webhook.Stop() }()
	if err := e.webhook.WaitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if o.reference != "" {
		if e.ref, err = startReference(o.reference, e.cp.KubeconfigPath(), e.tls, e.dir); err != nil {
			return err
		}
		defer e.ref.stop()
		review, err := e.review()
		if err != nil {
			return err
		}
		if err := e.ref.waitReady(ctx, review, e.tls.CAPEM, 2*time.Minute); err != nil {
			return err
		}
	}
	switch {
	case o.memory:
		return e.memory(ctx, first, o.serviceAccounts)
	case o.e2e > 0:
		return e.endToEnd(ctx, e2eOptions{pods: o.e2e, warmup: o.e2eWarmup, window: o.e2eWindow, profile: o.e2eProfile, seed: o.e2eSeed})
	}
	return e.load(ctx, o)
}

// createServiceAccounts creates ServiceAccounts [from, to) in namespace production; the
// first is the pod's s3-writer with the walkthrough's role, the others carry roles too.
func (e *env) createServiceAccounts(ctx context.Context, from, to int) error {
	if from == 0 {
		if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "production"}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				name := fmt.Sprintf("sa-%06d", i)
				if i == 0 {
					name = "s3-writer"
				}
				sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "production", Annotations: map[string]string{
					"eks.amazonaws.com/role-arn": fmt.Sprintf("arn:aws:iam::123456789012:role/Role%d", i%100),
				}}}
				if i == 0 {
					sa.Annotations["eks.amazonaws.com/role-arn"] = "arn:aws:iam::123456789012:role/S3WriterRole"
				}
				if _, err := e.cs.CoreV1().ServiceAccounts("production").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("create serviceaccount %s: %w", name, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// server is one webhook under load: this one, or the reference beside it.
type server struct {
	name string
	pid  int
	url  string
}

// load runs vegeta closed loop, then at a fixed rate, and prints the table. With
// -reference, each phase runs against this webhook and then the reference, alternating.
func (e *env) load(ctx context.Context, o options) error {
	body, err := e.review()
	if err != nil {
		return err
	}
	bodyFile := filepath.Join(e.dir, "review.json")
	caFile := filepath.Join(e.dir, "ca.pem")
	servers := []server{{"irsa-webhook", e.webhook.PID(), e.webhook.URL(webhookproc.PodPath)}}
	if e.ref != nil {
		servers = append(servers, server{"reference", e.ref.PID(), e.ref.URL()})
	}
	files := map[string][]byte{bodyFile: body, caFile: e.tls.CAPEM}
	for _, s := range servers {
		files[e.targetsFile(s)] = fmt.Appendf(nil, "POST %s\nContent-Type: application/json\n@%s\n", s.url, bodyFile)
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return err
		}
	}
	for _, s := range servers {
		fmt.Printf("AdmissionReview: %d bytes; %s pid %d at %s\n", len(body), s.name, s.pid, s.url)
		// Warm up connections, caches and the Go runtime.
		if _, err := e.attack(ctx, s, caFile, "warm-up", []string{"-rate=200/s", "-duration=3s"}); err != nil {
			return err
		}
	}
	// hey limits each connection's rate: the fixed-rate phase spreads o.rate over
	// fixedWorkers connections.
	const fixedWorkers = 10
	phases := []struct {
		name string
		args []string
		hey  heyPhase
	}{
		{fmt.Sprintf("closed loop, %d connections", o.workers), []string{"-rate=0", fmt.Sprintf("-workers=%d", o.workers), fmt.Sprintf("-max-workers=%d", o.workers), "-duration=" + o.duration.String()},
			heyPhase{workers: o.workers, d: o.duration}},
		{fmt.Sprintf("fixed %d req/s", o.rate), []string{fmt.Sprintf("-rate=%d/s", o.rate), "-duration=" + o.duration.String()},
			heyPhase{workers: fixedWorkers, qps: float64(o.rate) / fixedWorkers, d: o.duration}},
	}
	var rows []row
	for i, p := range phases {
		for j, s := range servers {
			var profiled chan error
			if i == 0 && j == 0 && o.profile != "" {
				profiled = make(chan error, 1)
				go func() { profiled <- e.cpuProfile(ctx, o.profile, o.duration*3/4) }()
			}
			var r row
			if e.hey != "" {
				r, err = e.heyAttack(ctx, s, bodyFile, p.name+" (hey)", p.hey)
			} else {
				r, err = e.attack(ctx, s, caFile, p.name, p.args)
			}
			if profiled != nil {
				if perr := <-profiled; perr != nil {
					return perr
				}
				fmt.Printf("CPU profile of the closed-loop phase: %s (go tool pprof -top %s)\n", o.profile, o.profile)
			}
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "server\tphase\treq/s\tp50\tp90\tp99\tmax\terrors\tserver CPU/req\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%d/%d\t%.0f µs\t\n", r.server, r.name, r.throughput, r.p50, r.p90, r.p99, r.max, r.errors, r.requests, r.cpuPerReq)
	}
	_ = tw.Flush()
	for _, s := range servers {
		rss, err := procfs.RSSKiB(s.pid)
		if err != nil {
			return err
		}
		fmt.Printf("RSS after load: %.1f MiB with %d ServiceAccounts (%s)\n", float64(rss)/1024, o.serviceAccounts, s.name)
		if b, err := procfs.RSSBreakdown(s.pid); err == nil {
			fmt.Println("  " + b)
		}
	}
	return nil
}

func (e *env) targetsFile(s server) string { return filepath.Join(e.dir, "targets-"+s.name+".txt") }

type row struct {
	server, name       string
	requests, errors   int
	throughput         float64
	p50, p90, p99, max time.Duration
	cpuPerReq          float64 // microseconds
}

func (e *env) attack(ctx context.Context, s server, caFile, name string, args []string) (row, error) {
	results := filepath.Join(e.dir, "results.bin")
	targets := e.targetsFile(s)
	cpu0, err := procfs.CPUTicks(s.pid)
	if err != nil {
		return row{}, err
	}
	cmd := exec.CommandContext(ctx, e.vegeta, append([]string{"attack", "-targets=" + targets, "-root-certs=" + caFile, "-keepalive=true", fmt.Sprintf("-http2=%t", e.http2), "-output=" + results}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return row{}, fmt.Errorf("vegeta attack (%s): %w", name, err)
	}
	cpu1, err := procfs.CPUTicks(s.pid)
	if err != nil {
		return row{}, err
	}
	rep, err := exec.CommandContext(ctx, e.vegeta, "report", "-type=json", results).Output()
	if err != nil {
		return row{}, fmt.Errorf("vegeta report: %w", err)
	}
	var m struct {
		Latencies struct {
			P50 time.Duration `json:"50th"`
			P90 time.Duration `json:"90th"`
			P99 time.Duration `json:"99th"`
			Max time.Duration `json:"max"`
		} `json:"latencies"`
		Requests    int            `json:"requests"`
		Throughput  float64        `json:"throughput"`
		Success     float64        `json:"success"`
		StatusCodes map[string]int `json:"status_codes"`
		Errors      []string       `json:"errors"`
	}
	if err := json.Unmarshal(rep, &m); err != nil {
		return row{}, fmt.Errorf("decode vegeta report: %w", err)
	}
	r := row{server: s.name, name: name, requests: m.Requests, throughput: m.Throughput, p50: m.Latencies.P50, p90: m.Latencies.P90, p99: m.Latencies.P99, max: m.Latencies.Max}
	r.errors = m.Requests - m.StatusCodes["200"]
	if m.Requests > 0 {
		r.cpuPerReq = float64(cpu1-cpu0) / clockTicks * 1e6 / float64(m.Requests)
	}
	if len(m.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "%s: errors: %q\n", name, m.Errors)
	}
	return r, nil
}

// cpuProfile fetches a CPU profile of the webhook over d from its pprof endpoint.
func (e *env) cpuProfile(ctx context.Context, path string, d time.Duration) error {
	url := strings.TrimSuffix(e.webhook.MetricsURL(), "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get CPU profile: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get CPU profile: HTTP %d: %w", resp.StatusCode, err)
	}
	return os.WriteFile(path, body, 0o644)
}

// review is the benchmark pod wrapped in an AdmissionReview as the API server sends it.
func (e *env) review() ([]byte, error) {
	y, err := os.ReadFile(filepath.Join(e.root, e.pod))
	if err != nil {
		return nil, err
	}
	pod, err := yaml.YAMLToJSON(y)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b",`)
	b.WriteString(`"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},`)
	b.WriteString(`"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},`)
	b.WriteString(`"namespace":"production","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"a1b2c3d4","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},`)
	b.WriteString(`"object":`)
	b.Write(pod)
	b.WriteString(`,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`)
	return b.Bytes(), nil
}

// memory measures the webhook's heap with `from` ServiceAccounts, then with `to`.
func (e *env) memory(ctx context.Context, from, to int) error {
	h0, err := e.steadyHeap(ctx)
	if err != nil {
		return err
	}
	rss0, _ := procfs.RSSKiB(e.webhook.PID())
	began := time.Now()
	if err := e.createServiceAccounts(ctx, from, to); err != nil {
		return err
	}
	fmt.Printf("created %d more ServiceAccounts in %s\n", to-from, time.Since(began).Round(time.Second))
	// Wait until the webhook's cache holds them all: a pod of the last one is mutated.
	h1, err := e.steadyHeap(ctx)
	if err != nil {
		return err
	}
	rss1, _ := procfs.RSSKiB(e.webhook.PID())
	fmt.Printf("heap: %.1f MiB at %d ServiceAccounts, %.1f MiB at %d: %.0f bytes per additional ServiceAccount\n",
		float64(h0)/(1<<20), from, float64(h1)/(1<<20), to, float64(h1-h0)/float64(to-from))
	fmt.Printf("RSS: %.1f MiB at %d, %.1f MiB at %d\n", float64(rss0)/1024, from, float64(rss1)/1024, to)
	return nil
}

// steadyHeap samples go_memstats_heap_alloc_bytes (live objects plus garbage not yet
// collected) 10 times a second apart and returns the lowest: the heap right after a GC.
func (e *env) steadyHeap(ctx context.Context) (int64, error) {
	lowest := int64(-1)
	for range 10 {
		_, body, err := webhookproc.GetAll(ctx, e.webhook.MetricsURL())
		if err != nil {
			return 0, err
		}
		v, err := metric(body, "go_memstats_heap_alloc_bytes")
		if err != nil {
			return 0, err
		}
		if lowest < 0 || v < lowest {
			lowest = v
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return lowest, nil
}

func metric(body, name string) (int64, error) {
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("metric %s not found", name)
}
