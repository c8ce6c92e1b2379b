package reliability_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/serving"
)

// Body flood: what issue 11 saw take the webhook from 36 to 440 MiB.
const (
	floodConnections = 60
	// maxFloodGrowth is the RSS growth the flood may cause; the chart's limit is 256 Mi.
	maxFloodGrowth = 64 << 20
	// reviewAtOnce bounds a real review's answer while the flood holds its connections.
	reviewAtOnce = time.Second
	// rssWindow is how long RSS is sampled once every flood request is in the handler.
	rssWindow = 2 * time.Second
	// cutSlack is how long past serving.ReadTimeout a held connection may stay open.
	cutSlack = 5 * time.Second
)

// TestBodyFlood: 60 TLS connections each announce a body of the largest size
// (admission.MaxBodyBytes), send one byte and hold on. The webhook's RSS must grow by less
// than 64 MiB, a real review must still be answered at once, and the server must cut the held
// connections once serving.ReadTimeout has passed. docs/reliability.md's "Hostile input"
// table records the figures (`go test ./test/reliability -run TestBodyFlood -v`).
func TestBodyFlood(t *testing.T) {
	ctx := t.Context()
	w := startWebhook(t, []string{"--trust-check=off"}, nil)
	ns := drillNamespace(t, "flood")
	createServiceAccount(t, suite.Admin, ns, "app", testRoleARN)
	client := newReviewClient(w.URL(webhookproc.PodPath), true, w.tls.CAPEM)
	defer client.close()
	if err := poll(ctx, readyTimeout, func() (bool, string) {
		_, err := client.mutate(ctx, ns, simplePod("warm-up", "app"))
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		t.Fatalf("control: a review is not mutated before the flood: %v", err)
	}
	base, err := w.RSS()
	if err != nil {
		t.Fatal(err)
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.tls.CAPEM)
	addr := strings.TrimSuffix(strings.TrimPrefix(w.URL(""), "https://"), "/")
	opened := time.Now()
	conns := make([]*tls.Conn, 0, floodConnections)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range floodConnections {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: webhookCallTimeout}, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
			webhookproc.PodPath, addr, admission.MaxBodyBytes); err != nil {
			t.Fatalf("flood connection %d: write: %v", i, err)
		}
	}
	// Every flood request is in the handler, reading its body (controller-runtime counts
	// them in flight around the hook).
	inFlight := func() float64 {
		return metricSum(scrape(t, w.MetricsURL()), "controller_runtime_webhook_requests_in_flight", `webhook="`+webhookproc.PodPath+`"`)
	}
	if err := poll(ctx, 30*time.Second, func() (bool, string) {
		n := inFlight()
		return n >= floodConnections, fmt.Sprintf("%v flood requests in flight, want %d", n, floodConnections)
	}); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	_, reviewErr := client.mutate(ctx, ns, simplePod("during-flood", "app"))
	took := time.Since(began)

	peak := base
	for end := time.Now().Add(rssWindow); time.Now().Before(end); time.Sleep(harness.PollEvery) {
		r, err := w.RSS()
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, r)
	}
	t.Logf("RSS %.1f MiB before, %.1f MiB with %d connections each announcing %d bytes (+%.1f MiB); a review took %v meanwhile",
		mib(base), mib(peak), floodConnections, admission.MaxBodyBytes, mib(peak-base), took.Round(time.Millisecond))
	if peak-base >= maxFloodGrowth {
		t.Errorf("RSS grew by %.1f MiB, want under %.0f MiB", mib(peak-base), mib(maxFloodGrowth))
	}
	if reviewErr != nil || took > reviewAtOnce {
		t.Errorf("a real review during the flood: %v after %v, want mutated within %v", reviewErr, took, reviewAtOnce)
	}

	// The server ends each held request once ReadTimeout has passed since it began (an
	// answer, 400, then the close; or the close).
	deadline := opened.Add(serving.ReadTimeout + cutSlack)
	held := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(deadline)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			held++
		}
	}
	if held > 0 {
		t.Errorf("%d of %d flood connections still open %v after they began (ReadTimeout %v)", held, floodConnections, time.Since(opened).Round(time.Second), serving.ReadTimeout)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
