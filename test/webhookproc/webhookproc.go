// Package webhookproc builds the irsa-webhook binary and runs `irsa-webhook serve` as a child
// process on loopback, for the integration tests and the local demo (`make run`): a real
// process with real flags, TLS, probes and metrics, exactly as a cluster would run it.
//
// A child process rather than an in-process server, because the serve wiring lives in package
// main (cmd/irsa-webhook) and cannot be imported; exec'ing the binary also tests that wiring.
// Children get SIGKILL when the thread that started them exits (Linux), so a test binary that
// panics or times out leaves nothing running, and they stay in the caller's process group so
// that Ctrl-C reaches them.
//
// Typical use:
//
//	root, _ := webhookproc.ModuleRoot(ctx)
//	_ = webhookproc.Build(ctx, root, filepath.Join(dir, "irsa-webhook"))
//	tls, _ := webhookproc.WriteServingCert(dir, time.Now())
//	p, _ := webhookproc.Start(webhookproc.Options{Binary: ..., Kubeconfig: ..., TLS: tls, LogPath: ...})
//	_ = p.WaitReady(ctx, time.Minute)
//	cfg := webhookproc.PodWebhookConfiguration("irsa-webhook", p.URL(webhookproc.PodPath), tls.CAPEM, admissionregistrationv1.Fail)
package webhookproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/procfs"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// PodPath is the pod webhook's path on the HTTPS port.
const PodPath = "/mutate-v1-pod"

// ServiceAccountPath is the trust-check webhook's path on the HTTPS port.
const ServiceAccountPath = "/validate-v1-serviceaccount"

// ServiceAccountWebhookName is the trust-check webhook's name in its configuration.
const ServiceAccountWebhookName = "serviceaccount.irsa-webhook.io"

// PodWebhookName is the webhook's name inside the configuration PodWebhookConfiguration returns.
const PodWebhookName = "pod.irsa-webhook.io"

const (
	certValidity       = 24 * time.Hour
	defaultStopTimeout = 10 * time.Second
	readyPollEvery     = 100 * time.Millisecond
	probeTimeout       = 2 * time.Second
	probeBodyLimit     = 4 << 10
	logTailLines       = 20
	webhookTimeout     = 10 // seconds, the API server's timeoutSeconds for the webhook call
)

// ModuleRoot returns the directory of the main module's go.mod, as the go command sees it from
// the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root with `go env GOMOD`: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find the module root: not inside a Go module (run from the irsa-webhook repository)")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles ./cmd/irsa-webhook of the module at root into out. The go build cache makes
// every build after the first take seconds.
func Build(ctx context.Context, root, out string) error {
	// As `make build` and the Dockerfile build it, so tests and measurements run what ships.
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/irsa-webhook")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/irsa-webhook in %s: %w\n%s", root, err, strings.TrimSpace(output.String()))
	}
	return nil
}

// TLS is a webhook serving certificate on disk and the CA that issued it.
type TLS struct {
	CAPEM    []byte // the caBundle of the webhook configuration
	CertFile string
	KeyFile  string
}

// WriteServingCert creates a CA and a serving certificate for 127.0.0.1 and localhost, writes
// the certificate and key to dir (tls.crt, tls.key) and returns their paths with the CA.
func WriteServingCert(dir string, now time.Time) (TLS, error) {
	ca, err := certs.NewCA("irsa-webhook-test-ca", now, certValidity)
	if err != nil {
		return TLS{}, err
	}
	certPEM, keyPEM, err := ca.Issue([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, now, certValidity)
	if err != nil {
		return TLS{}, err
	}
	t := TLS{CAPEM: ca.CertPEM(), CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	if err := os.WriteFile(t.CertFile, certPEM, 0o600); err != nil {
		return TLS{}, fmt.Errorf("write serving certificate: %w", err)
	}
	if err := os.WriteFile(t.KeyFile, keyPEM, 0o600); err != nil {
		return TLS{}, fmt.Errorf("write serving key: %w", err)
	}
	return t, nil
}

// Options describes one `irsa-webhook serve` process.
type Options struct {
	Binary     string // the built irsa-webhook
	Kubeconfig string
	TLS        TLS
	// Port (HTTPS webhook), MetricsPort and HealthPort are loopback ports; 0 picks a free one.
	Port, MetricsPort, HealthPort int
	// LogPath receives the process's stdout and stderr (appended: a restart adds to it).
	LogPath string
	// Args are more serve flags, after the standard ones (so they may also override them):
	// e.g. --excluded-namespaces, or the flags of webhooks added later.
	Args []string
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL; default 10s.
	StopTimeout time.Duration
	// Env is added to this process's environment (e.g. AWS_ENDPOINT_URL for a local IAM).
	Env []string
	// Exact, when set, are the process's whole arguments, instead of serve, the standard flags
	// and Args: a command line written for the reference webhook, say. Port must then be the
	// HTTPS port it sets (for URL); the probe and metrics ports are the caller's business.
	Exact []string
}

// Process is a running `irsa-webhook serve`.
type Process struct {
	opts     Options
	cmd      *exec.Cmd
	cancel   context.CancelFunc
	done     chan struct{} // closed when the child has exited
	waitErr  error         // valid after done is closed
	exitedAt time.Time     // valid after done is closed
}

// Start starts the webhook with the standard flags (loopback only, JSON logs) followed by
// opts.Args. It returns once the process runs; use WaitReady to wait for /readyz.
func Start(opts Options) (*Process, error) {
	if opts.StopTimeout == 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	if opts.Exact != nil {
		if opts.Binary == "" || opts.Port == 0 || opts.LogPath == "" {
			return nil, errors.New("start irsa-webhook: Binary, Port and LogPath are required")
		}
		return start(opts, opts.Exact)
	}
	if opts.Binary == "" || opts.Kubeconfig == "" || opts.TLS.CertFile == "" || opts.TLS.KeyFile == "" || opts.LogPath == "" {
		return nil, errors.New("start irsa-webhook: Binary, Kubeconfig, TLS files and LogPath are required")
	}
	free, err := controlplane.FreePorts(3)
	if err != nil {
		return nil, fmt.Errorf("start irsa-webhook: %w", err)
	}
	for i, port := range []*int{&opts.Port, &opts.MetricsPort, &opts.HealthPort} {
		if *port == 0 {
			*port = free[i]
		}
	}
	return start(opts, append([]string{
		"serve",
		"--kubeconfig=" + opts.Kubeconfig,
		"--tls-cert-file=" + opts.TLS.CertFile,
		"--tls-key-file=" + opts.TLS.KeyFile,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(opts.Port),
		"--metrics-bind-address=" + loopback(opts.MetricsPort),
		// Plain HTTP on loopback, so that tests, the load tool and `make run` scrape without a
		// token; the secure default (HTTPS, authenticated) is tested in test/reliability.
		"--metrics-secure=false",
		"--health-probe-bind-address=" + loopback(opts.HealthPort),
		"--log-format=json",
	}, opts.Args...))
}

// start runs the binary with args.
func start(opts Options, args []string) (*Process, error) {
	logFile, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start irsa-webhook: open log: %w", err)
	}
	fmt.Fprintf(logFile, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), opts.Binary, strings.Join(args, " "))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), opts.Env...)
	// Stop cancels ctx: SIGTERM first (graceful shutdown), SIGKILL after StopTimeout.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = opts.StopTimeout
	p := &Process{opts: opts, cmd: cmd, cancel: cancel, done: make(chan struct{})}
	if err := controlplane.StartChild(cmd, logFile, func(waitErr error) {
		p.waitErr, p.exitedAt = waitErr, time.Now()
		close(p.done)
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("start irsa-webhook: %w", err)
	}
	return p, nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// Options returns the options the process was started with, ports filled in: Start(p.Options())
// after Stop or Kill starts it again on the same ports.
func (p *Process) Options() Options { return p.opts }

// PID is the webhook process's ID (for /proc measurements).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// RSS is the process's resident memory in bytes (VmRSS of /proc/PID/status; Linux only).
func (p *Process) RSS() (int64, error) {
	kib, err := procfs.RSSKiB(p.PID())
	return kib << 10, err
}

// URL is https://127.0.0.1:PORT + path on the webhook's HTTPS port.
func (p *Process) URL(path string) string { return "https://" + loopback(p.opts.Port) + path }

// HealthURL is http://127.0.0.1:PORT + path on the probe port (/healthz, /readyz).
func (p *Process) HealthURL(path string) string {
	return "http://" + loopback(p.opts.HealthPort) + path
}

// MetricsURL is the Prometheus endpoint.
func (p *Process) MetricsURL() string { return "http://" + loopback(p.opts.MetricsPort) + "/metrics" }

// LogPath is the file holding the process's output.
func (p *Process) LogPath() string { return p.opts.LogPath }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitReady polls /readyz until it answers 200. It fails early when the process exits, and
// otherwise after timeout; the error holds the last answer and the end of the log.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(readyPollEvery)
	defer ticker.Stop()
	for {
		code, body, err := Get(ctx, p.HealthURL("/readyz"))
		if err == nil && code == http.StatusOK {
			return nil
		}
		last := fmt.Sprintf("HTTP %d: %s", code, strings.TrimSpace(body))
		if err != nil {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("irsa-webhook exited before it was ready (%w)%s", p.waitErr, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("irsa-webhook not ready after %v (last /readyz: %s)%s", timeout, last, p.LogTail())
		case <-ticker.C:
		}
	}
}

// Stop sends SIGTERM, waits up to StopTimeout, then SIGKILLs. It returns an error only when
// the process had to be killed. Stopping an exited process does nothing.
func (p *Process) Stop() error {
	if p == nil || p.Exited() {
		return nil
	}
	p.cancel()
	<-p.done
	if killed(p.cmd.ProcessState) {
		return fmt.Errorf("stop irsa-webhook: did not exit within %v of SIGTERM; killed", p.opts.StopTimeout)
	}
	return nil
}

// Signal sends sig to the process without waiting for it to exit.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal irsa-webhook: %w", err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit code and when it
// exited.
func (p *Process) Wait(timeout time.Duration) (code int, exitedAt time.Time, err error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, time.Time{}, fmt.Errorf("irsa-webhook still running %v after the wait began", timeout)
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return -1, p.exitedAt, fmt.Errorf("wait for irsa-webhook: %w", p.waitErr)
	}
	return p.cmd.ProcessState.ExitCode(), p.exitedAt, nil
}

// Kill sends SIGKILL (a crash, no graceful shutdown) and waits for the process to exit.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill irsa-webhook: %w", err)
	}
	<-p.done
	p.cancel()
	return nil
}

// killed reports whether the process ended by SIGKILL.
func killed(s *os.ProcessState) bool {
	if s == nil {
		return false
	}
	ws, ok := s.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// LogTail returns the last lines of the log, prefixed with a newline, for error messages.
func (p *Process) LogTail() string {
	data, err := os.ReadFile(p.opts.LogPath)
	if err != nil {
		return fmt.Sprintf("\n(cannot read log %s: %v)", p.opts.LogPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	lines = lines[max(0, len(lines)-logTailLines):]
	return fmt.Sprintf("\nlast %d lines of %s:\n  %s", len(lines), p.opts.LogPath, strings.Join(lines, "\n  "))
}

// Get GETs a plain-HTTP url (probes) and returns the status code and up to 4 KiB of the body.
func Get(ctx context.Context, url string) (int, string, error) {
	return get(ctx, url, probeBodyLimit)
}

// GetAll is Get without the body limit (for /metrics).
func GetAll(ctx context.Context, url string) (int, string, error) {
	return get(ctx, url, -1)
}

func get(ctx context.Context, url string, limit int64) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if limit >= 0 {
		r = io.LimitReader(resp.Body, limit)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return resp.StatusCode, string(body), fmt.Errorf("read %s: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}

// FreePort asks the OS for a free loopback port. Another process may take it before the
// webhook binds it; on these machines that has not been seen.
func FreePort() (int, error) {
	ports, err := controlplane.FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// PodWebhookConfiguration registers the pod webhook at url (https://127.0.0.1:PORT/mutate-v1-pod)
// the way the Helm chart does: pod CREATE, admission.k8s.io/v1, no side effects (so dry-run
// requests are sent too), reinvoked if a later webhook changes the pod, never for kube-system
// or for pods with the skip label. failurePolicy is the caller's choice: Fail in tests, so that
// a broken webhook shows up as an error instead of an unmutated pod.
func PodWebhookConfiguration(name, url string, caBundle []byte, failurePolicy admissionregistrationv1.FailurePolicyType) *admissionregistrationv1.MutatingWebhookConfiguration {
	sideEffects := admissionregistrationv1.SideEffectClassNone
	reinvocation := admissionregistrationv1.IfNeededReinvocationPolicy
	scope := admissionregistrationv1.NamespacedScope
	timeout := int32(webhookTimeout)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    PodWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &sideEffects,
			FailurePolicy:           &failurePolicy,
			ReinvocationPolicy:      &reinvocation,
			TimeoutSeconds:          &timeout,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"pods"},
					Scope:       &scope,
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key:      corev1.LabelMetadataName,
				Operator: metav1.LabelSelectorOpNotIn,
				Values:   []string{"kube-system"},
			}}},
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key:      irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel),
				Operator: metav1.LabelSelectorOpDoesNotExist,
			}}},
		}},
	}
}

// ServiceAccountWebhookConfiguration registers the trust check at url, the way the Helm
// chart does: ServiceAccount CREATE and UPDATE, sideEffects NoneOnDryRun (it records Events).
func ServiceAccountWebhookConfiguration(name, url string, caBundle []byte, failurePolicy admissionregistrationv1.FailurePolicyType) *admissionregistrationv1.ValidatingWebhookConfiguration {
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	scope := admissionregistrationv1.NamespacedScope
	timeout := int32(webhookTimeout)
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    ServiceAccountWebhookName,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &sideEffects,
			FailurePolicy:           &failurePolicy,
			TimeoutSeconds:          &timeout,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"serviceaccounts"},
					Scope:       &scope,
				},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key:      corev1.LabelMetadataName,
				Operator: metav1.LabelSelectorOpNotIn,
				Values:   []string{"kube-system"},
			}}},
		}},
	}
}
