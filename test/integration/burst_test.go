package integration_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// restartWithLaggingWatch restarts the shared webhook behind a proxy that delivers its
// watch events lag late (as an informer lags behind a busy API server, or is still relisting
// after an API server restart) while every other request, the live lookups included, passes
// at once. Without it this machine's informer sees most ServiceAccounts before their pods
// arrive and the lookups on a miss are never exercised. args are more serve flags. The
// original webhook is restored when the test ends.
func restartWithLaggingWatch(t *testing.T, lag time.Duration, args ...string) {
	t.Helper()
	cfg := suite.cp.Config()
	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.Transport = tr
	rp.ErrorLog = log.New(io.Discard, "", 0) // watches cut when the webhook stops are expected
	rp.FlushInterval = -1                    // watch events go out as soon as they are due
	rp.ModifyResponse = func(r *http.Response) error {
		if q := r.Request.URL.Query().Get("watch"); q == "true" || q == "1" {
			r.Body = newLaggedBody(r.Body, lag)
		}
		return nil
	}
	proxy := httptest.NewServer(rp)
	kubeconfig := filepath.Join(t.TempDir(), "lagging-kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lag"] = &clientcmdapi.Cluster{Server: proxy.URL}
	kc.AuthInfos["lag"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["lag"] = &clientcmdapi.Context{Cluster: "lag", AuthInfo: "lag"}
	kc.CurrentContext = "lag"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	original := suite.webhook.Options()
	restart := func(opts webhookproc.Options) {
		if err := suite.webhook.Stop(); err != nil {
			t.Errorf("stop webhook: %v", err)
		}
		p, err := webhookproc.Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		suite.webhook = p
		if err := p.WaitReady(context.Background(), readyTimeout); err != nil {
			t.Fatalf("%v%s", err, p.LogTail())
		}
	}
	lagged := original
	lagged.Kubeconfig = kubeconfig
	lagged.Args = append(slices.Clip(lagged.Args), args...)
	restart(lagged)
	t.Cleanup(func() {
		restart(original)
		proxy.Close()
	})
}

// laggedBody hands out what it reads from body lag after it arrived.
type laggedBody struct {
	body   io.ReadCloser
	chunks chan laggedChunk
	lag    time.Duration
	cur    []byte
}

type laggedChunk struct {
	data []byte
	at   time.Time
	err  error
}

func newLaggedBody(body io.ReadCloser, lag time.Duration) *laggedBody {
	b := &laggedBody{body: body, chunks: make(chan laggedChunk, 1024), lag: lag}
	go func() {
		defer close(b.chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := body.Read(buf)
			b.chunks <- laggedChunk{data: buf[:n], at: time.Now(), err: err}
			if err != nil {
				return
			}
		}
	}()
	return b
}

func (b *laggedBody) Read(p []byte) (int, error) {
	for len(b.cur) == 0 {
		c, ok := <-b.chunks
		if !ok {
			return 0, io.EOF
		}
		time.Sleep(time.Until(c.at.Add(b.lag))) // the delay line itself, not a wait for a condition
		if len(c.data) == 0 && c.err != nil {
			return 0, c.err
		}
		b.cur = c.data
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

func (b *laggedBody) Close() error { return b.body.Close() }

// TestServiceAccountBurst applies what one manifest of 100 workloads does: 100
// ServiceAccounts and, right behind each, 2 pods using it, all at once, while the webhook's
// informer lags (restartWithLaggingWatch). The informer has not seen the ServiceAccounts
// when their pods arrive, so the pods depend on the live lookups on a cache miss; every pod
// must still get credentials.
//
// The lookups get a 5 s budget (--service-account-lookup-timeout) instead of the default
// 1 s, below the API server's 10 s webhook timeout: on a CPU-starved machine the API server
// itself took more than 1 s to answer half the GETs of a burst, which says nothing about the
// webhook. What the test proves does not depend on it: behind client-go's default
// client-side limit (5 requests/s, burst 10) a GET waits 0.2 s more for each one before it,
// so most of the 100 wait past 5 s (run with that limit: 116 of the 200 pods without
// credentials); the live client's own limit (sacache.LiveLookupBurst) lets all 100 start at
// once.
func TestServiceAccountBurst(t *testing.T) {
	const serviceAccounts, podsEach = 100, 2
	const lookupBudget = 5 * time.Second
	admin, w := newClient(t)
	ns := newNamespace(t, admin, "burst")
	// The watch lags more than the budget, so that no pod is saved by its ServiceAccount
	// reaching the informer while its lookup waits.
	restartWithLaggingWatch(t, 3*lookupBudget, "--service-account-lookup-timeout="+lookupBudget.String())
	// The test's own client must not be the bottleneck: no client-side limit.
	cfg := suite.cp.Config()
	cfg.QPS = -1
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		misses []string
		wg     sync.WaitGroup
	)
	fail := func(format string, args ...any) { // t.Fatal may not be called from these goroutines
		mu.Lock()
		defer mu.Unlock()
		t.Errorf(format, args...)
	}
	began := time.Now()
	for i := range serviceAccounts {
		wg.Go(func() {
			name := fmt.Sprintf("burst-%03d", i)
			sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: withRole(testRoleARN)}}
			if _, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), sa, metav1.CreateOptions{}); err != nil {
				fail("create serviceaccount %s: %v", name, err)
				return
			}
			var pods sync.WaitGroup
			for j := range podsEach {
				pods.Go(func() {
					p, err := cs.CoreV1().Pods(ns).Create(t.Context(), simplePod(fmt.Sprintf("%s-%d", name, j), name), metav1.CreateOptions{})
					if err != nil {
						fail("create pod: %v (webhook log %s)", err, suite.webhook.LogPath())
						return
					}
					if v, _ := envValue(p.Spec.Containers[0], irsa.EnvRoleARN); v != testRoleARN {
						mu.Lock()
						misses = append(misses, p.Name)
						mu.Unlock()
					}
				})
			}
			pods.Wait()
		})
	}
	wg.Wait()
	t.Logf("%d ServiceAccounts and %d pods created in %v", serviceAccounts, serviceAccounts*podsEach, time.Since(began).Round(time.Millisecond))
	if len(misses) > 0 {
		t.Errorf("%d of %d pods created right behind their ServiceAccount lack %s: %q\nwarnings: %.2000q", len(misses), serviceAccounts*podsEach, irsa.EnvRoleARN, misses, w.Take(""))
	}
}
