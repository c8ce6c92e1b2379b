package reliability_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// serveProcess is `irsa-webhook serve` started by the test itself rather than by webhookproc,
// for the drills that need what webhookproc keeps to itself: sending a signal without waiting
// for the exit, the exit code, and when the process exited.
type serveProcess struct {
	cmd                           *exec.Cmd
	port, metricsPort, healthPort int
	logPath                       string
	done                          chan struct{} // closed when the process has exited
	exitedAt                      time.Time     // valid after done
	state                         *os.ProcessState
	waitErr                       error
}

// startServe starts the webhook with the standard loopback flags (those webhookproc uses)
// followed by args; it is SIGKILLed when the test ends if still running.
func startServe(t *testing.T, certs webhookproc.TLS, args []string) *serveProcess {
	t.Helper()
	ports, err := controlplane.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{
		port: ports[0], metricsPort: ports[1], healthPort: ports[2],
		logPath: filepath.Join(testDir(t), "webhook.log"), done: make(chan struct{}),
	}
	args = append([]string{
		"serve",
		"--kubeconfig=" + suite.cp.KubeconfigPath(),
		"--tls-cert-file=" + certs.CertFile,
		"--tls-key-file=" + certs.KeyFile,
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(p.port),
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(p.metricsPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(p.healthPort),
		"--log-format=json",
	}, args...)
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(suite.binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := controlplane.StartChild(p.cmd, logFile, func(waitErr error) {
		p.waitErr, p.exitedAt, p.state = waitErr, time.Now(), p.cmd.ProcessState
		close(p.done)
	}); err != nil {
		t.Fatalf("start irsa-webhook: %v", err)
	}
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *serveProcess) url(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(p.port) + path
}

func (p *serveProcess) healthURL(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(p.healthPort) + path
}

func (p *serveProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until 200.
func (p *serveProcess) waitReady(ctx context.Context) error {
	return poll(ctx, readyTimeout, func() (bool, string) {
		if p.exited() {
			return true, ""
		}
		code, body, err := webhookproc.Get(ctx, p.healthURL("/readyz"))
		return err == nil && code == http.StatusOK, fmt.Sprintf("/readyz: %d %s %v", code, body, err)
	})
}

// signal sends sig without waiting for the process to exit.
func (p *serveProcess) signal(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// wait waits up to timeout for the exit and returns the exit code.
func (p *serveProcess) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("irsa-webhook still running %v after the wait began", timeout)
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return -1, p.waitErr
	}
	return p.state.ExitCode(), nil
}
