package reliability_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// podAttempt is one pod creation through the API server.
type podAttempt struct {
	start   time.Time
	sa      string
	err     error
	mutated bool
}

// TestAPIServerRestart restarts kube-apiserver while one goroutine creates pods through it
// and others POST AdmissionReviews straight to the webhook. The webhook must answer every
// direct request, from its cache, even while the API server is away; every pod created once
// the webhook is ready again must be mutated, including pods of a ServiceAccount created after
// the restart; the ServiceAccount cache itself must recover (its watch resumes: the new
// ServiceAccount is served without a live GET); and nothing may panic.
func TestAPIServerRestart(t *testing.T) {
	const (
		directWorkers    = 3
		maxDirect        = 50000 // per worker
		maxPods          = 2000
		podsBefore       = 10               // pods created through the API server before the restart
		podsAfter        = 20               // and after the webhook is ready again
		podsOfNewSA      = 10               // pods of the ServiceAccount created after the restart
		cacheRecovery    = 30 * time.Second // client-go's reflector backs off up to 30s between relists
		podClientTimeout = 10 * time.Second
	)
	w := startWebhook(t, []string{"--trust-check=off"}, nil)
	registerPodWebhook(t, "restart", w)
	ns := drillNamespace(t, "restart")
	createServiceAccount(t, suite.Admin, ns, "before", testRoleARN)
	waitMutating(t, ns, "before", w)
	ctx := t.Context()

	// Pods through the API server, one at a time, with the current ServiceAccount.
	cfg := suite.CP.Config()
	cfg.Timeout = podClientTimeout
	podClient := kubernetes.NewForConfigOrDie(cfg)
	var currentSA atomic.Pointer[string]
	before := "before"
	currentSA.Store(&before)
	var podsMu sync.Mutex
	var pods []podAttempt
	podCount := func(since time.Time, sa string) int {
		podsMu.Lock()
		defer podsMu.Unlock()
		n := 0
		for _, a := range pods {
			if a.err == nil && !a.start.Before(since) && (sa == "" || a.sa == sa) {
				n++
			}
		}
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for range maxPods {
			select {
			case <-stop:
				return
			default:
			}
			sa := *currentSA.Load()
			a := podAttempt{start: time.Now(), sa: sa}
			p := simplePod("", sa)
			p.GenerateName = "load-"
			got, err := podClient.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			a.err = err
			if err == nil {
				a.mutated = hasEnv(got.Spec.Containers[0], irsa.EnvRoleARN)
			} else {
				time.Sleep(100 * time.Millisecond) // the API server is away: do not spin
			}
			podsMu.Lock()
			pods = append(pods, a)
			podsMu.Unlock()
		}
	})
	// AdmissionReviews straight to the webhook, keep-alive.
	direct := newReviewClient(w.URL(webhookproc.PodPath), true, w.tls.CAPEM)
	defer direct.close()
	var directShots []shot
	wg.Go(func() {
		directShots = load(ctx, directWorkers, maxDirect, stop, func(ctx context.Context, _ int) error {
			_, err := direct.mutate(ctx, ns, simplePod("", "before"))
			return err
		})
	})
	// The webhook's readiness, throughout; apiAway is set while RestartAPIServer runs.
	var notReady, pollsWhileAway atomic.Int64
	var apiAway atomic.Bool
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			away := apiAway.Load()
			if code, _, err := webhookproc.Get(ctx, w.HealthURL("/readyz")); err != nil || code != http.StatusOK {
				notReady.Add(1)
			}
			if away && apiAway.Load() {
				pollsWhileAway.Add(1)
			}
		}
	})
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	began := time.Now()
	if err := poll(ctx, time.Minute, func() (bool, string) {
		n := podCount(began, "")
		return n >= podsBefore, fmt.Sprintf("%d pods created", n)
	}); err != nil {
		t.Fatalf("load before the restart: %v", err)
	}
	restartAt := time.Now()
	apiAway.Store(true)
	if err := suite.CP.RestartAPIServer(ctx); err != nil {
		t.Fatalf("%v%s", err, apiServerLogTail(t))
	}
	apiAway.Store(false)
	apiBack := time.Now()
	if err := w.WaitReady(ctx, readyTimeout); err != nil {
		t.Fatal(err)
	}
	readyAgain := time.Now()
	createServiceAccount(t, suite.Admin, ns, "after", testRoleARN)
	after := "after"
	currentSA.Store(&after)
	if err := poll(ctx, time.Minute, func() (bool, string) {
		n, m := podCount(readyAgain, ""), podCount(readyAgain, "after")
		return n >= podsAfter && m >= podsOfNewSA, fmt.Sprintf("%d pods created after the restart, %d of them with the new ServiceAccount", n, m)
	}); err != nil {
		t.Fatalf("load after the restart: %v", err)
	}
	stopLoad()

	// The cache recovered: a pod of the ServiceAccount created after the restart is mutated
	// without the webhook asking the API server for it (apiserver_request_total of GET
	// serviceaccounts does not move; the counters restarted with the API server).
	saGets := func() float64 {
		raw, err := suite.Admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatalf("scrape kube-apiserver metrics: %v", err)
		}
		return metricSum(string(raw), "apiserver_request_total", `resource="serviceaccounts"`, `verb="GET"`)
	}
	var cacheOK time.Time
	err := poll(ctx, cacheRecovery, func() (bool, string) {
		g0 := saGets()
		_, err := direct.mutate(ctx, ns, simplePod("", "after"))
		g1 := saGets()
		if err == nil && g1 == g0 {
			cacheOK = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("mutate: %v; live GETs of serviceaccounts during the request: %v", err, g1-g0)
	})
	if err != nil {
		t.Errorf("the ServiceAccount cache did not recover after the API server restart: %v", err)
	}

	// Direct requests: none may fail, before, during or after the restart.
	if f := failures(directShots, time.Time{}); len(f) > 0 {
		t.Errorf("%d of %d direct admission requests failed:%s", len(f), len(directShots), describe(f, restartAt))
	}
	duringRestart := 0
	for _, s := range directShots {
		if s.start.After(restartAt) && s.end.Before(apiBack) {
			duringRestart++
		}
	}
	// Pods through the API server: every pod created is mutated (before the restart, and after
	// the webhook is ready again); creations fail only while the API server is away.
	var misses, errsAfter []string
	created, failed := 0, 0
	for _, a := range pods {
		switch {
		case a.err != nil && !a.start.Before(readyAgain):
			errsAfter = append(errsAfter, fmt.Sprintf("at %+.3fs (%s): %v", a.start.Sub(readyAgain).Seconds(), a.sa, a.err))
		case a.err != nil:
			failed++
		case !a.mutated:
			misses = append(misses, fmt.Sprintf("at %+.3fs (%s)", a.start.Sub(readyAgain).Seconds(), a.sa))
		default:
			created++
		}
	}
	if len(misses) > 0 {
		t.Errorf("%d pods created without %s (times relative to the webhook being ready again): %q", len(misses), irsa.EnvRoleARN, misses)
	}
	if len(errsAfter) > 0 {
		t.Errorf("%d pod creations failed after the API server and the webhook were ready again: %q", len(errsAfter), errsAfter)
	}
	// Readiness does not depend on the API server once the cache has synced: /readyz answered
	// 200 to every poll, including those made while the API server was away.
	if n := notReady.Load(); n != 0 {
		t.Errorf("/readyz answered other than 200 to %d polls during the drill; the webhook must stay ready while the API server restarts", n)
	}
	if pollsWhileAway.Load() == 0 {
		t.Errorf("/readyz was not polled while the API server was away: the readiness check above proves nothing")
	}
	lines := logLines(t, w.LogPath())
	if p := panicLines(lines); len(p) > 0 {
		t.Errorf("the webhook log tells of a panic:\n%s", strings.Join(p, "\n"))
	}
	if v := metricSum(scrape(t, w.MetricsURL()), "irsa_webhook_handler_panics_total"); v != 0 {
		t.Errorf("irsa_webhook_handler_panics_total = %v, want 0", v)
	}
	if w.Exited() {
		t.Errorf("the webhook exited%s", w.LogTail())
	}
	t.Logf("API server down for %.2fs (restart call), webhook ready again %.2fs later; direct requests: %d (%d during the restart), %d failed; "+
		"pods through the API server: %d mutated, %d refused while it was away, %d missed; /readyz non-200 polls: %d (%d polls while it was away); cache served the new ServiceAccount %.2fs after readiness",
		apiBack.Sub(restartAt).Seconds(), readyAgain.Sub(apiBack).Seconds(), len(directShots), duringRestart, len(failures(directShots, time.Time{})),
		created, failed, len(misses), notReady.Load(), pollsWhileAway.Load(), cacheOK.Sub(readyAgain).Seconds())
}

// TestSIGTERMDrain sends SIGTERM to a webhook under steady keep-alive load. /readyz must fail
// at once while admission requests are still answered; the load stops the way a real API
// server stops sending (when the endpoint is gone: readiness failed, plus a margin), and no
// request sent before that may fail. New connections are still served until just before the
// shutdown delay ends, and the process exits 0 within shutdown delay + grace period.
func TestSIGTERMDrain(t *testing.T) {
	const (
		workers    = 8
		maxPerW    = 100000
		delay      = 3 * time.Second
		grace      = 5 * time.Second
		margin     = 300 * time.Millisecond // endpoint removal and API server reaction, modelled
		readyLimit = time.Second            // /readyz must fail within this of SIGTERM
		warmup     = 200                    // requests answered before SIGTERM
	)
	certs, err := webhookproc.WriteServingCert(suite.TestDir(t), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := startWebhookWith(t, webhookproc.Options{TLS: certs, Args: []string{"--trust-check=off", "--shutdown-delay=" + delay.String(), "--shutdown-grace-period=" + grace.String()}})
	ctx := t.Context()
	ns := drillNamespace(t, "drain")
	createServiceAccount(t, suite.Admin, ns, "app", testRoleARN)
	client := newReviewClient(p.URL(webhookproc.PodPath), true, certs.CAPEM)
	defer client.close()
	if err := poll(ctx, readyTimeout, func() (bool, string) {
		_, err := client.mutate(ctx, ns, simplePod("", "app"))
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		t.Fatal(err)
	}

	var answered atomic.Int64
	stop := make(chan struct{})
	loadDone := make(chan []shot)
	go func() {
		loadDone <- load(ctx, workers, maxPerW, stop, func(ctx context.Context, _ int) error {
			_, err := client.mutate(ctx, ns, simplePod("", "app"))
			if err == nil {
				answered.Add(1)
			}
			return err
		})
	}()
	if err := poll(ctx, time.Minute, func() (bool, string) {
		return answered.Load() >= warmup, fmt.Sprintf("%d answered", answered.Load())
	}); err != nil {
		close(stop)
		<-loadDone
		t.Fatal(err)
	}

	sigAt := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var notReadyAt time.Time
	exitedEarly := false
	for deadline := sigAt.Add(2 * readyLimit); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if p.Exited() {
			exitedEarly = true
			break
		}
		if code, _, err := webhookproc.Get(ctx, p.HealthURL("/readyz")); err == nil && code != http.StatusOK {
			notReadyAt = time.Now()
			break
		}
	}
	// Model the API server: it keeps sending until it notices, then stops.
	time.Sleep(time.Until(notReadyAt.Add(margin)))
	stopAt := time.Now()
	close(stop)
	shots := <-loadDone

	// New connections during the rest of the delay (the Service's endpoints may lag).
	fresh := newReviewClient(p.URL(webhookproc.PodPath), false, certs.CAPEM)
	var lateShots []shot
	for time.Now().Before(sigAt.Add(delay - 500*time.Millisecond)) {
		s := shot{start: time.Now()}
		_, s.err = fresh.mutate(ctx, ns, simplePod("", "app"))
		s.end = time.Now()
		lateShots = append(lateShots, s)
		time.Sleep(100 * time.Millisecond)
	}
	code, exitedAt, waitErr := p.Wait(delay + grace + 5*time.Second)
	exitAfter := exitedAt.Sub(sigAt)

	switch {
	case exitedEarly:
		t.Fatalf("the webhook exited before /readyz failed")
	case notReadyAt.IsZero():
		t.Fatalf("/readyz still 200 %v after SIGTERM", 2*readyLimit)
	case notReadyAt.Sub(sigAt) > readyLimit:
		t.Errorf("/readyz failed %v after SIGTERM, want within %v", notReadyAt.Sub(sigAt), readyLimit)
	}
	servedAfterNotReady := 0
	for _, s := range shots {
		if s.err == nil && s.start.After(notReadyAt) {
			servedAfterNotReady++
		}
	}
	if servedAfterNotReady == 0 {
		t.Errorf("no admission request was answered after /readyz failed: readiness must fail while the webhook still serves")
	}
	if f := failures(shots, stopAt); len(f) > 0 {
		t.Errorf("%d of %d requests sent before the load stopped failed (times relative to SIGTERM):%s", len(f), len(shots), describe(f, sigAt))
	}
	if f := failures(lateShots, time.Time{}); len(f) > 0 {
		t.Errorf("%d of %d new-connection requests during the shutdown delay failed:%s", len(f), len(lateShots), describe(f, sigAt))
	}
	switch {
	case waitErr != nil:
		t.Errorf("exit: %v", waitErr)
	case code != 0:
		t.Errorf("exit code %d, want 0", code)
	case exitAfter > delay+grace:
		t.Errorf("exited %v after SIGTERM, want within shutdown delay + grace = %v", exitAfter, delay+grace)
	case exitAfter < delay:
		t.Errorf("exited %v after SIGTERM, before the shutdown delay %v ended", exitAfter, delay)
	}
	if t.Failed() {
		t.Logf("webhook log after SIGTERM:\n%s", strings.Join(linesFrom(logLines(t, p.LogPath()), "shutting down"), "\n"))
	}
	inFlight := 0
	for _, s := range shots {
		if s.start.Before(sigAt) && s.end.After(sigAt) {
			inFlight++
		}
	}
	t.Logf("%d requests from %d keep-alive workers over %d connections (%d in flight at SIGTERM, %d answered after /readyz failed), %d failed before the load stopped; "+
		"/readyz failed %v after SIGTERM; load stopped %v after SIGTERM; %d new-connection requests during the delay, %d failed; exit code %d after %v",
		len(shots), workers, client.dials.Load(), inFlight, servedAfterNotReady, len(failures(shots, stopAt)), notReadyAt.Sub(sigAt).Round(time.Millisecond),
		stopAt.Sub(sigAt).Round(time.Millisecond), len(lateShots), len(failures(lateShots, time.Time{})), code, exitAfter.Round(time.Millisecond))
}

// TestCertificateRotation replaces the serving certificate files (file mode, watched by
// controller-runtime's certwatcher) with a certificate from a new CA, atomically (temp file +
// rename), while clients trusting both CAs keep sending. New handshakes must present the new
// certificate within a bounded time, and no request may fail.
func TestCertificateRotation(t *testing.T) {
	const (
		keepAliveWorkers = 4
		freshWorkers     = 2                // DisableKeepAlives: a TLS handshake per request
		maxPerW          = 100000           //
		switchLimit      = 15 * time.Second // fsnotify at once; certwatcher also polls every 10s
		warmup           = 200
		afterSwitch      = 50 // new-handshake requests after the switch
		newCACommonName  = "irsa-reliability-rotated-ca"
	)
	dir := suite.TestDir(t)
	old, err := webhookproc.WriteServingCert(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w := startWebhookWith(t, webhookproc.Options{TLS: old, Args: []string{"--trust-check=off"}})
	ns := drillNamespace(t, "rotate")
	createServiceAccount(t, suite.Admin, ns, "app", testRoleARN)
	ctx := t.Context()

	now := time.Now()
	ca, err := certs.NewCA(newCACommonName, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	oldCA := caCommonName(t, old.CAPEM)

	keep := newReviewClient(w.URL(webhookproc.PodPath), true, old.CAPEM, ca.CertPEM())
	fresh := newReviewClient(w.URL(webhookproc.PodPath), false, old.CAPEM, ca.CertPEM())
	defer keep.close()
	if err := poll(ctx, readyTimeout, func() (bool, string) {
		_, err := keep.mutate(ctx, ns, simplePod("", "app"))
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		t.Fatal(err)
	}

	type handshake struct {
		start, end time.Time
		issuer     string
	}
	var mu sync.Mutex
	var handshakes []handshake
	var answered atomic.Int64
	stop := make(chan struct{})
	loadDone := make(chan []shot)
	go func() {
		loadDone <- load(ctx, keepAliveWorkers+freshWorkers, maxPerW, stop, func(ctx context.Context, worker int) error {
			if worker < keepAliveWorkers {
				_, err := keep.mutate(ctx, ns, simplePod("", "app"))
				answered.Add(1)
				return err
			}
			start := time.Now()
			a, err := fresh.mutate(ctx, ns, simplePod("", "app"))
			answered.Add(1)
			if err == nil && a.tls != nil && len(a.tls.PeerCertificates) > 0 {
				mu.Lock()
				handshakes = append(handshakes, handshake{start: start, end: time.Now(), issuer: a.tls.PeerCertificates[0].Issuer.CommonName})
				mu.Unlock()
			}
			return err
		})
	}()
	stopLoad := sync.OnceValue(func() []shot { close(stop); return <-loadDone })
	defer stopLoad()
	if err := poll(ctx, time.Minute, func() (bool, string) {
		return answered.Load() >= warmup, fmt.Sprintf("%d answered", answered.Load())
	}); err != nil {
		t.Fatal(err)
	}

	rotatedAt := time.Now()
	for _, f := range []struct {
		path string
		data []byte
	}{{old.CertFile, certPEM}, {old.KeyFile, keyPEM}} {
		tmp := filepath.Join(dir, "."+filepath.Base(f.path)+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
	var switchedAt time.Time
	newCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, h := range handshakes {
			if h.issuer == newCACommonName {
				if switchedAt.IsZero() {
					switchedAt = h.end
				}
				n++
			}
		}
		return n
	}
	if err := poll(ctx, switchLimit, func() (bool, string) {
		return newCount() > 0, "no handshake presented the new certificate"
	}); err != nil {
		t.Errorf("after replacing the certificate files: %v%s", err, w.LogTail())
	}
	if err := poll(ctx, time.Minute, func() (bool, string) {
		n := newCount()
		return n >= afterSwitch, fmt.Sprintf("%d handshakes with the new certificate", n)
	}); err != nil && !switchedAt.IsZero() {
		t.Error(err)
	}
	shots := stopLoad()

	if f := failures(shots, time.Time{}); len(f) > 0 {
		t.Errorf("%d of %d requests failed (times relative to the rotation):%s", len(f), len(shots), describe(f, rotatedAt))
	}
	var oldAfterSwitch, oldTotal int
	for _, h := range handshakes {
		if h.issuer == oldCA {
			oldTotal++
			if !switchedAt.IsZero() && h.start.After(switchedAt) {
				oldAfterSwitch++
			}
		}
	}
	if oldAfterSwitch > 0 {
		t.Errorf("%d handshakes begun after the switch still presented the old certificate", oldAfterSwitch)
	}
	t.Logf("%d requests (%d keep-alive workers, %d new-handshake workers), %d failed; new certificate presented %v after the rename; %d handshakes with the old CA, %d with the new",
		len(shots), keepAliveWorkers, freshWorkers, len(failures(shots, time.Time{})), switchedAt.Sub(rotatedAt).Round(time.Millisecond), oldTotal, len(handshakes)-oldTotal)
}

// linesFrom returns the lines from the first one containing marker on.
func linesFrom(lines []string, marker string) []string {
	for i, l := range lines {
		if strings.Contains(l, marker) {
			return lines[i:]
		}
	}
	return nil
}

// apiServerLogTail copies kube-apiserver's log next to the webhook's (the control plane
// removes its directory when it stops) and returns its last lines.
func apiServerLogTail(t *testing.T) string {
	data, err := os.ReadFile(filepath.Join(suite.CP.LogDir(), "kube-apiserver.log"))
	if err != nil {
		return "\n(cannot read the kube-apiserver log: " + err.Error() + ")"
	}
	kept := filepath.Join(suite.TestDir(t), "kube-apiserver.log")
	_ = os.WriteFile(kept, data, 0o644)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-15):]
	return fmt.Sprintf("\nlast lines of %s:\n  %s", kept, strings.Join(lines, "\n  "))
}

func caCommonName(t *testing.T, caPEM []byte) string {
	t.Helper()
	c, err := harness.Certificate(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subject.CommonName
}

// TestIAMFaults runs the trust check (enforce mode) against a local IAM endpoint that is
// healthy, down, slower than --trust-check-timeout, or throttling. Pod admissions never fail,
// never wait for IAM and never call it: in every state, pods of a ServiceAccount naming a role
// the webhook has never seen (its namespace is not sent to the trust check, so nothing cached
// it) are mutated with that role, each well under the IAM deadline, while the endpoint's call
// count stays put. ServiceAccount admissions are answered within the deadline, also 20 at once
// while IAM hangs.
func TestIAMFaults(t *testing.T) {
	const (
		checkTimeout = 2 * time.Second
		slack        = time.Second // the deadline is the webhook's; the API server round trip adds a little
		podsPerFault = 10
		concurrentSA = 20
		podLimit     = 2 * time.Second // a pod admission while IAM fails: not waiting for IAM
	)
	iam := newIAM(t)
	w := startWebhook(t, []string{"--trust-check=enforce", "--trust-check-timeout=" + checkTimeout.String()}, iamEnv(t, iam, "reliability-iam-secret"))
	registerPodWebhook(t, "iam", w)
	registerServiceAccountWebhook(t, "iam", w)
	// Pods only: the trust check is not registered for this namespace, so no ServiceAccount
	// created there ever has its role looked up.
	registerPodWebhook(t, "iam-pods", w)
	ns, podNS := drillNamespace(t, "iam"), drillNamespace(t, "iam-pods")
	appRole := "arn:aws:iam::" + testAccount + ":role/IAMFaultsApp"
	iam.PutRole(appRole, trustPolicy(t, appRole, ns, "app"))
	cs, warns := warningClient(t)
	createServiceAccount(t, cs, ns, "app", appRole)
	if w := warns.Take(""); len(w) > 0 {
		t.Fatalf("trusted ServiceAccount got warnings %q", w)
	}
	waitMutating(t, ns, "app", w)

	var roles atomic.Int32
	newRole := func() (string, string) {
		n := roles.Add(1)
		return fmt.Sprintf("arn:aws:iam::%s:role/Uncached%d", testAccount, n), fmt.Sprintf("sa-%d", n)
	}
	var podSeq atomic.Int32
	// createPods creates n pods of a new ServiceAccount in podNS naming a role never seen
	// before, which IAM knows and trusts (a pod path that asked IAM would get an answer), and
	// wants each mutated with that role, without an IAM call and under podLimit.
	createPods := func(t *testing.T, n int) (maxLatency time.Duration) {
		t.Helper()
		role, sa := newRole()
		iam.PutRole(role, trustPolicy(t, role, podNS, sa))
		createServiceAccount(t, cs, podNS, sa, role)
		calls := iam.TotalCalls()
		for i := range n {
			began := time.Now()
			p, err := cs.CoreV1().Pods(podNS).Create(t.Context(), simplePod(fmt.Sprintf("pod-%d", podSeq.Add(1)), sa), metav1.CreateOptions{})
			took := time.Since(began)
			maxLatency = max(maxLatency, took)
			if err != nil {
				t.Errorf("pod %d refused: %v", i, err)
				continue
			}
			if got, _ := harness.EnvValue(p.Spec.Containers[0], irsa.EnvRoleARN); got != role {
				t.Errorf("pod %d: %s = %q, want %q", i, irsa.EnvRoleARN, got, role)
			}
			if took > podLimit {
				t.Errorf("pod %d took %v, want under %v: the pod path must not wait for IAM", i, took.Round(time.Millisecond), podLimit)
			}
		}
		if got := iam.TotalCalls(); got != calls {
			t.Errorf("creating %d pods of a ServiceAccount naming a role never seen before made %d calls to IAM or STS; the pod path must never call AWS", n, got-calls)
		}
		return maxLatency
	}
	faults := []struct {
		name         string
		apply, clear func()
		verified     bool // the ServiceAccount's trust can be verified
	}{
		{name: "healthy", apply: func() {}, clear: func() {}, verified: true},
		{name: "down", apply: iam.Down, clear: func() {
			if err := iam.Up(); err != nil {
				t.Errorf("bring the IAM endpoint back: %v", err)
			}
		}},
		{name: "slower than the deadline", apply: func() { iam.SetDelay(10 * checkTimeout) }, clear: func() { iam.SetDelay(0) }},
		{name: "throttling", apply: func() { iam.SetFault(iamserver.CodeThrottling) }, clear: func() { iam.SetFault("") }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.apply()
			defer f.clear()
			podMax := createPods(t, podsPerFault)
			calls := iam.TotalCalls()
			role, name := newRole()
			if f.verified {
				iam.PutRole(role, trustPolicy(t, role, ns, name))
			}
			began := time.Now()
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), serviceAccount(name, role), metav1.CreateOptions{})
			took := time.Since(began)
			w := warns.Take("")
			switch {
			case err != nil:
				t.Errorf("ServiceAccount refused (enforce mode, not fail-closed, must admit an unverified trust): %v", err)
			case took > checkTimeout+slack:
				t.Errorf("ServiceAccount admission took %v, past the %v deadline", took, checkTimeout)
			case f.verified && len(w) > 0:
				t.Errorf("trusted ServiceAccount got warnings %q", w)
			case !f.verified && (len(w) != 1 || !strings.Contains(w[0], "not verified")):
				t.Errorf("warnings %q, want one saying the trust was not verified", w)
			}
			t.Logf("IAM %s: %d pods, slowest %v; ServiceAccount answered in %v with %d IAM calls", f.name, podsPerFault, podMax.Round(time.Millisecond), took.Round(time.Millisecond), iam.TotalCalls()-calls)
		})
	}

	t.Run("20 ServiceAccounts at once while IAM hangs", func(t *testing.T) {
		iam.SetDelay(time.Minute)
		defer iam.SetDelay(0)
		type result struct {
			took time.Duration
			err  error
			warn []string
		}
		results := make([]result, concurrentSA)
		podLatencies := make([]time.Duration, podsPerFault)
		podErrs := make([]error, podsPerFault)
		var wg sync.WaitGroup
		began := time.Now()
		for i := range concurrentSA {
			role, name := newRole()
			wg.Go(func() {
				c, ws := warningClient(t)
				start := time.Now()
				_, err := c.CoreV1().ServiceAccounts(ns).Create(t.Context(), serviceAccount(name, role), metav1.CreateOptions{})
				results[i] = result{took: time.Since(start), err: err, warn: ws.Take("")}
			})
		}
		for i := range podsPerFault { // pods meanwhile: not queued behind IAM
			wg.Go(func() {
				start := time.Now()
				p, err := suite.Admin.CoreV1().Pods(ns).Create(t.Context(), simplePod(fmt.Sprintf("during-hang-%d", i), "app"), metav1.CreateOptions{})
				podLatencies[i] = time.Since(start)
				if err == nil && !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) {
					err = fmt.Errorf("pod not mutated")
				}
				podErrs[i] = err
			})
		}
		wg.Wait()
		wall := time.Since(began)
		var slowest time.Duration
		for i, r := range results {
			slowest = max(slowest, r.took)
			switch {
			case r.err != nil:
				t.Errorf("ServiceAccount %d refused: %v", i, r.err)
			case r.took > checkTimeout+slack:
				t.Errorf("ServiceAccount %d answered after %v, past the %v deadline + %v", i, r.took.Round(time.Millisecond), checkTimeout, slack)
			case len(r.warn) != 1 || !strings.Contains(r.warn[0], "not verified"):
				t.Errorf("ServiceAccount %d: warnings %q, want one saying the trust was not verified", i, r.warn)
			}
		}
		slowestPod := slices.Max(podLatencies)
		for i, err := range podErrs {
			if err != nil {
				t.Errorf("pod %d while IAM hangs: %v", i, err)
			} else if podLatencies[i] > podLimit {
				t.Errorf("pod %d took %v while IAM hangs, want under %v", i, podLatencies[i].Round(time.Millisecond), podLimit)
			}
		}
		t.Logf("%d concurrent ServiceAccounts with IAM hanging: slowest answered in %v (deadline %v), all in %v; %d pods meanwhile, slowest %v",
			concurrentSA, slowest.Round(time.Millisecond), checkTimeout, wall.Round(time.Millisecond), podsPerFault, slowestPod.Round(time.Millisecond))
	})
	if p := panicLines(logLines(t, w.LogPath())); len(p) > 0 {
		t.Errorf("the webhook log tells of a panic:\n%s", strings.Join(p, "\n"))
	}
}
