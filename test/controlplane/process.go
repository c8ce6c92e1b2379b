package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Log excerpts put into start errors.
const (
	logTailLines   = 30
	logErrorLines  = 5
	readyPollEvery = 100 * time.Millisecond
)

// process is one running child (etcd or kube-apiserver) whose output goes to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the child has exited
	waitErr error         // valid after done is closed
}

// startProcess starts path with args, appending stdout and stderr to logPath.
func startProcess(name, path string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	fmt.Fprintf(logFile, "### %s %s %s\n", time.Now().Format(time.RFC3339Nano), path, strings.Join(args, " "))
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	if err := StartChild(cmd, logFile, func(waitErr error) { p.waitErr = waitErr; close(p.done) }); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// StartChild starts cmd so that the kernel kills it should this process die: with
// childSysProcAttr, from a goroutine that keeps its OS thread until cmd exits (the
// parent-death signal follows the thread that forked, not the process; the thread is never
// unlocked, so the runtime retires it afterwards instead of reusing it). Once cmd has
// exited, exited gets Wait's error, then log (if not nil) is closed. It returns Start's
// error; when Start fails, log is closed and exited is not called.
func StartChild(cmd *exec.Cmd, log io.Closer, exited func(waitErr error)) error {
	cmd.SysProcAttr = childSysProcAttr()
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if log != nil {
			defer func() { _ = log.Close() }()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILLs. Stopping an exited process is a no-op.
func (p *process) stop(timeout time.Duration) error {
	if p == nil || p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: send SIGTERM: %w", p.name, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: SIGKILL after %v: %w", p.name, timeout, err)
	}
	<-p.done
	return fmt.Errorf("stop %s: did not exit within %v of SIGTERM; killed", p.name, timeout)
}

// waitReady polls check every readyPollEvery until it succeeds, the child exits, ctx ends or
// timeout passes. Errors carry the log excerpt.
func (p *process) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(readyPollEvery)
	defer ticker.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		last = check(attempt)
		cancelAttempt()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%w)%s", p.name, p.waitErr, p.logExcerpt())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w (last check: %w)%s", p.name, timeout, ctx.Err(), last, p.logExcerpt())
		case <-ticker.C:
		}
	}
}

// errorLine matches the lines worth quoting from the logs: klog errors and fatals (E0102 ...,
// F0102 ...), cobra's "Error: ..." and etcd's JSON "level":"error"/"fatal"/"panic".
var errorLine = regexp.MustCompile(`^(?:[EF]\d{4} |Error: |\{"level":"(?:error|fatal|panic)")`)

// logExcerpt returns the first error lines and the last lines of the log, for start errors.
func (p *process) logExcerpt() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("\n(cannot read log %s: %v)", p.logPath, err)
	}
	return excerpt(p.name, p.logPath, data)
}

func excerpt(name, logPath string, data []byte) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var b strings.Builder
	var errs []string
	for _, l := range lines {
		if errorLine.MatchString(l) {
			errs = append(errs, l)
			if len(errs) == logErrorLines {
				break
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(&b, "\nfirst errors in %s:\n  %s", logPath, strings.Join(errs, "\n  "))
	}
	tail := lines[max(0, len(lines)-logTailLines):]
	fmt.Fprintf(&b, "\nlast %d lines of %s:\n  %s", len(tail), logPath, strings.Join(tail, "\n  "))
	return b.String()
}

// FreePorts asks the OS for n distinct free loopback ports. All listeners stay open until every
// port is chosen, so the ports differ; another process may still take one before we bind it.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeFiles writes each path's content with mode 0600, reporting the first failure.
func writeFiles(files map[string][]byte) error {
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}
