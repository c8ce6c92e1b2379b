// Command soak runs the irsa-webhook binary against a real etcd + kube-apiserver for a while at
// a steady load of realistic AdmissionReviews and watches it for leaks: every sample interval
// (a minute by default) it records the process's resident memory (VmRSS of /proc/PID/status),
// its goroutines (go_goroutines of /metrics) and the requests and errors of the interval, and
// prints a row. At the end it prints a verdict and exits non-zero on any error or growth:
//
//   - RSS: the largest sample of the last third of the run (the last 10 minutes of a 30-minute
//     run) must stay within +10% of the largest of its second sixth to third (minutes 5 to 10).
//   - goroutines: the same windows, within +5.
//
// The load is webhook/pod/testdata/benchmark/pod.yaml (a 3.5 KB pod as the API server sends
// it) wrapped in an AdmissionReview with a fresh UID, POSTed over HTTPS keep-alive by a
// bounded worker pool at a fixed rate; its ServiceAccount exists with a role, so every answer
// must be allowed with a patch. Everything runs on loopback.
//
//	go run ./test/soak -duration 30m      # make soak
//	go run ./test/soak -duration 3m       # a quick check that it works
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/procfs"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Verdict thresholds.
const (
	maxRSSGrowth       = 0.10 // fraction over the baseline
	maxGoroutineGrowth = 5
)

const (
	podFile        = "webhook/pod/testdata/benchmark/pod.yaml" // relative to the module root
	roleARN        = "arn:aws:iam::123456789012:role/S3WriterRole"
	requestTimeout = 10 * time.Second
	setupTimeout   = 5 * time.Minute // cold builds of the control plane and the webhook
	stopTimeout    = 30 * time.Second
	maxErrorsShown = 10
)

type options struct {
	duration time.Duration
	sample   time.Duration
	rate     int
	workers  int
	keep     bool
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	fs.DurationVar(&o.duration, "duration", 30*time.Minute, "how long the load runs")
	fs.DurationVar(&o.sample, "sample", time.Minute, "time between two samples")
	fs.IntVar(&o.rate, "rate", 200, "admission requests per second")
	fs.IntVar(&o.workers, "workers", 16, "concurrent HTTPS keep-alive clients")
	fs.BoolVar(&o.keep, "keep", false, "keep the webhook's log and certificates")
	_ = fs.Parse(os.Args[1:])
	if o.duration < 3*o.sample || o.rate < 1 || o.workers < 1 {
		fmt.Fprintf(os.Stderr, "soak: -duration (%v) must be at least 3 samples (-sample %v); -rate and -workers must be positive\n", o.duration, o.sample)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := soak(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

func soak(ctx context.Context, o options) (bool, error) {
	setupCtx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	root, err := webhookproc.ModuleRoot(setupCtx)
	if err != nil {
		return false, err
	}
	dir, err := os.MkdirTemp("", "irsa-soak-")
	if err != nil {
		return false, err
	}
	defer func() {
		if o.keep {
			fmt.Printf("webhook log and certificates kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	binary := filepath.Join(dir, "irsa-webhook")
	log("building the webhook")
	if err := webhookproc.Build(setupCtx, root, binary); err != nil {
		return false, err
	}
	log("starting etcd and kube-apiserver")
	cp, err := controlplane.Start(setupCtx, controlplane.Options{})
	if err != nil {
		return false, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			log("%v", err)
		}
	}()
	if err := createServiceAccount(setupCtx, cp); err != nil {
		return false, err
	}
	certs, err := webhookproc.WriteServingCert(dir, time.Now())
	if err != nil {
		return false, err
	}
	wh, err := webhookproc.Start(webhookproc.Options{
		Binary: binary, Kubeconfig: cp.KubeconfigPath(), TLS: certs, LogPath: filepath.Join(dir, "webhook.log"),
		Args: []string{"--trust-check=off", "--shutdown-delay=0s"}, StopTimeout: stopTimeout,
	})
	if err != nil {
		return false, err
	}
	defer func() {
		if err := wh.Stop(); err != nil {
			log("%v", err)
		}
	}()
	if err := wh.WaitReady(setupCtx, setupTimeout); err != nil {
		return false, err
	}
	review, err := reviewTemplate(filepath.Join(root, podFile))
	if err != nil {
		return false, err
	}
	client, err := newClient(certs.CAPEM, o.workers)
	if err != nil {
		return false, err
	}
	// One request first: a setup problem is not a soak result.
	if _, err := client.admit(setupCtx, wh.URL(webhookproc.PodPath), review); err != nil {
		return false, fmt.Errorf("first admission request: %w%s", err, wh.LogTail())
	}

	log("load: %d req/s from %d workers for %v, a sample every %v (webhook PID %d)", o.rate, o.workers, o.duration, o.sample, wh.PID())
	st := &stats{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		generate(loadCtx, o, client, wh.URL(webhookproc.PodPath), review, st)
	}()
	began := time.Now()
	var samples []sample
	printHeader()
	ticker := time.NewTicker(o.sample)
	defer ticker.Stop()
	interrupted := false
	for len(samples) < int(o.duration/o.sample) && !interrupted {
		select {
		case <-ticker.C:
		case <-ctx.Done():
			interrupted = true
			continue
		}
		prev := time.Duration(0)
		if len(samples) > 0 {
			prev = samples[len(samples)-1].at
		}
		s, err := takeSample(ctx, wh, st, time.Since(began), prev)
		if err != nil {
			stopLoad()
			<-loadDone
			return false, err
		}
		samples = append(samples, s)
		printRow(s)
		if wh.Exited() {
			break
		}
	}
	stopLoad()
	<-loadDone
	if interrupted {
		return false, errors.New("interrupted")
	}
	if wh.Exited() {
		return false, fmt.Errorf("the webhook exited during the soak%s", wh.LogTail())
	}
	total := st.total()
	v := judge(samples, o.duration)
	fmt.Println()
	fmt.Printf("requests: %d (%.1f/s), errors: %d\n", total.requests, float64(total.requests)/time.Since(began).Seconds(), total.errors)
	for _, e := range st.firstErrors() {
		fmt.Printf("  error: %s\n", e)
	}
	for _, l := range v.lines {
		fmt.Println(l)
	}
	pass := v.flat && total.errors == 0
	if pass {
		fmt.Println("verdict: PASS (no errors; RSS and goroutines flat)")
	} else {
		fmt.Printf("verdict: FAIL (errors %d; RSS and goroutines flat: %v)\n", total.errors, v.flat)
	}
	return pass, nil
}

func log(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[soak] "+format+"\n", args...)
}

// createServiceAccount creates production/s3-writer, the benchmark pod's ServiceAccount.
func createServiceAccount(ctx context.Context, cp *controlplane.ControlPlane) error {
	cs, err := kubernetes.NewForConfig(cp.Config())
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "production"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace production: %w", err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "s3-writer",
		Annotations: map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation): roleARN}}}
	if _, err := cs.CoreV1().ServiceAccounts("production").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create serviceaccount production/s3-writer: %w", err)
	}
	return nil
}

// review is an AdmissionReview body around the pod, split where the UID goes.
type review struct{ before, after []byte }

const uidMarker = "SOAK-UID-MARKER"

func reviewTemplate(path string) (review, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return review{}, fmt.Errorf("read the benchmark pod: %w", err)
	}
	pod, err := yaml.YAMLToJSON(data)
	if err != nil {
		return review{}, fmt.Errorf("decode %s: %w", path, err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uidMarker,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "production",
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: pod},
		},
	})
	if err != nil {
		return review{}, err
	}
	before, after, ok := bytes.Cut(body, []byte(uidMarker))
	if !ok {
		return review{}, errors.New("build the review: no UID marker")
	}
	return review{before: before, after: after}, nil
}

// body returns the review with uid.
func (r review) body(uid string) []byte {
	return slices.Concat(r.before, []byte(uid), r.after)
}

// client POSTs reviews over HTTPS keep-alive.
type client struct {
	http *http.Client
	seq  atomic.Int64
}

func newClient(caPEM []byte, workers int) (*client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("load the webhook's CA")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: requestTimeout}}, nil
}

// admit sends one review and checks the answer: HTTP 200, same UID, allowed, with a patch.
func (c *client) admit(ctx context.Context, url string, r review) (time.Duration, error) {
	uid := "soak-" + strconv.FormatInt(c.seq.Add(1), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.body(uid)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	began := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	took := time.Since(began)
	if err != nil {
		return took, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return took, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, data)
	}
	var rv admissionv1.AdmissionReview
	switch err := json.Unmarshal(data, &rv); {
	case err != nil:
		return took, fmt.Errorf("decode answer: %w", err)
	case rv.Response == nil || string(rv.Response.UID) != uid:
		return took, fmt.Errorf("answer not for %s: %.200s", uid, data)
	case !rv.Response.Allowed || len(rv.Response.Patch) == 0:
		return took, fmt.Errorf("pod not mutated: allowed %v, warnings %q", rv.Response.Allowed, rv.Response.Warnings)
	}
	return took, nil
}

// stats counts what the load generator did, per sample interval and in total.
type stats struct {
	mu        sync.Mutex
	latencies []time.Duration // of the current interval
	requests  int64           // of the current interval
	errors    int64
	all       counts
	errs      []string
}

type counts struct{ requests, errors int64 }

func (s *stats) record(took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.all.requests++
	if err != nil {
		s.errors++
		s.all.errors++
		if len(s.errs) < maxErrorsShown {
			s.errs = append(s.errs, time.Now().Format(time.TimeOnly)+" "+err.Error())
		}
		return
	}
	s.latencies = append(s.latencies, took)
}

// interval returns and resets the current interval's counts and latencies.
func (s *stats) interval() (counts, []time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, l := counts{s.requests, s.errors}, s.latencies
	s.requests, s.errors, s.latencies = 0, 0, nil
	return c, l
}

func (s *stats) total() counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all
}

func (s *stats) firstErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// generate sends o.rate requests per second through o.workers workers until ctx ends. A tick
// that finds every worker busy is an error: the webhook did not keep up with the rate.
func generate(ctx context.Context, o options, c *client, url string, r review, st *stats) {
	jobs := make(chan struct{}, o.workers)
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for range jobs {
				took, err := c.admit(ctx, url, r)
				if ctx.Err() != nil {
					return // the soak ended during the request
				}
				st.record(took, err)
			}
		})
	}
	ticker := time.NewTicker(time.Second / time.Duration(o.rate))
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			select {
			case jobs <- struct{}{}:
			default:
				st.record(0, errors.New("every worker busy: the webhook did not keep up with the rate"))
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// sample is one row of the table.
type sample struct {
	at         time.Duration // since the load began
	requests   int64
	errors     int64
	p50, p99   time.Duration
	rssKiB     int64
	goroutines int
	interval   time.Duration
}

func takeSample(ctx context.Context, wh *webhookproc.Process, st *stats, at, prev time.Duration) (sample, error) {
	c, lat := st.interval()
	s := sample{at: at, interval: at - prev, requests: c.requests, errors: c.errors}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p50, s.p99 = lat[len(lat)/2], lat[min(len(lat)-1, int(math.Ceil(float64(len(lat))*0.99))-1)]
	}
	var err error
	if s.rssKiB, err = procfs.RSSKiB(wh.PID()); err != nil {
		return s, err
	}
	if s.goroutines, err = goroutines(ctx, wh.MetricsURL()); err != nil {
		return s, err
	}
	return s, nil
}

// goroutines reads go_goroutines from the webhook's /metrics.
func goroutines(ctx context.Context, url string) (int, error) {
	code, body, err := webhookproc.GetAll(ctx, url)
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("scrape %s: HTTP %d, %w", url, code, err)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int(v), err
		}
	}
	return 0, fmt.Errorf("no go_goroutines in %s", url)
}

func printHeader() {
	fmt.Printf("%8s %9s %7s %7s %8s %8s %8s %10s\n", "minute", "requests", "req/s", "errors", "p50 ms", "p99 ms", "RSS MiB", "goroutines")
}

func printRow(s sample) {
	fmt.Printf("%8.1f %9d %7.1f %7d %8.2f %8.2f %8.1f %10d\n", s.at.Minutes(), s.requests, float64(s.requests)/s.interval.Seconds(), s.errors,
		ms(s.p50), ms(s.p99), float64(s.rssKiB)/1024, s.goroutines)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// verdict says whether RSS and goroutines stayed flat, with the lines explaining it.
type verdict struct {
	flat  bool
	lines []string
}

// judge compares the tail of the run (its last third: the last 10 minutes of 30) with its
// baseline (from a sixth to a third of the run: minutes 5 to 10 of 30), after warm-up.
func judge(samples []sample, duration time.Duration) verdict {
	var base, tail []sample
	for _, s := range samples {
		if s.at >= duration/6 && s.at <= duration/3+time.Second {
			base = append(base, s)
		}
		if s.at >= duration-duration/3 {
			tail = append(tail, s)
		}
	}
	if len(base) == 0 || len(tail) == 0 {
		return verdict{lines: []string{fmt.Sprintf("cannot judge: %d baseline and %d tail samples (run longer or sample more often)", len(base), len(tail))}}
	}
	maxOf := func(ss []sample, f func(sample) int64) int64 {
		var m int64
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	rss := func(s sample) int64 { return s.rssKiB }
	gor := func(s sample) int64 { return int64(s.goroutines) }
	baseRSS, tailRSS := maxOf(base, rss), maxOf(tail, rss)
	baseG, tailG := maxOf(base, gor), maxOf(tail, gor)
	rssOK := float64(tailRSS) <= float64(baseRSS)*(1+maxRSSGrowth)
	gOK := tailG <= baseG+maxGoroutineGrowth
	window := func(ss []sample) string {
		return fmt.Sprintf("minutes %.1f-%.1f", ss[0].at.Minutes(), ss[len(ss)-1].at.Minutes())
	}
	return verdict{
		flat: rssOK && gOK,
		lines: []string{
			fmt.Sprintf("RSS: baseline (%s) max %.1f MiB, tail (%s) max %.1f MiB (%+.1f%%, limit +%.0f%%): %s",
				window(base), float64(baseRSS)/1024, window(tail), float64(tailRSS)/1024, 100*(float64(tailRSS)/float64(baseRSS)-1), 100*maxRSSGrowth, okText(rssOK)),
			fmt.Sprintf("goroutines: baseline max %d, tail max %d (%+d, limit +%d): %s", baseG, tailG, tailG-baseG, maxGoroutineGrowth, okText(gOK)),
		},
	}
}

func okText(ok bool) string {
	if ok {
		return "flat"
	}
	return "GROWING"
}
