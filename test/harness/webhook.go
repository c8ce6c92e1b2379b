package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// ReadyTimeout bounds the wait for a webhook process's /readyz.
const ReadyTimeout = time.Minute

// unsafeInPath are the characters of a test's name that do not go into a directory name.
var unsafeInPath = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// processes numbers the webhook processes of this test binary, for their directories.
var processes atomic.Int32

// TestDir is a directory for one test's files under the suite's directory (kept when the suite
// fails).
func (s *Suite) TestDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(s.Dir, unsafeInPath.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ProcessDir is a new directory under the test's for one webhook process.
func (s *Suite) ProcessDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(s.TestDir(t), fmt.Sprintf("webhook-%d", processes.Add(1)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// StartWebhook starts `irsa-webhook serve` for one test. It fills in what opts leaves out: the
// suite's binary and kubeconfig, a log in a directory of its own, and a serving certificate
// for 127.0.0.1 written there (unless opts.TLS names files). It waits until /readyz answers
// 200 and stops the process when the test ends; a test that failed logs the end of its log.
func (s *Suite) StartWebhook(t testing.TB, opts webhookproc.Options) *webhookproc.Process {
	t.Helper()
	dir := s.ProcessDir(t)
	if opts.Binary == "" {
		opts.Binary = s.Binary
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = s.CP.KubeconfigPath()
	}
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(dir, "webhook.log")
	}
	if opts.TLS.CertFile == "" {
		certs, err := webhookproc.WriteServingCert(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		opts.TLS = certs
	}
	p, err := webhookproc.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("webhook log:%s", p.LogTail())
		}
		if err := p.Stop(); err != nil {
			t.Errorf("stop webhook: %v", err)
		}
	})
	if err := p.WaitReady(t.Context(), ReadyTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}
