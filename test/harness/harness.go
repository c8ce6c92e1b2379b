// Package harness is what the suites under test/ that run against a real control plane share:
// starting the control plane while the irsa-webhook binary builds, clients, one webhook process
// per test, the objects every suite creates (a one-container pod, a ServiceAccount naming a
// role) and the checks every suite makes on them, polling, and reading certificates.
//
// A suite's TestMain hands its tests to Main:
//
//	var suite *harness.Suite
//
//	func TestMain(m *testing.M) {
//		os.Exit(harness.Main(harness.Options{Name: "reliability"}, func(s *harness.Suite) int {
//			suite = s
//			return m.Run()
//		}))
//	}
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
)

// BuildTimeout bounds the build of the webhook binary: a cold `go build` on two busy cores.
const BuildTimeout = 3 * time.Minute

// Options configures Main.
type Options struct {
	// Name is the suite's short name: its messages start with "[Name]", its directory with
	// "irsa-Name-".
	Name string
	// ControlPlane is passed to controlplane.Main.
	ControlPlane controlplane.Options
	// NoBinary skips building irsa-webhook, for suites that only need the control plane.
	NoBinary bool
}

// Suite is one test package's control plane, webhook binary and directory.
type Suite struct {
	Name string
	// CP is the control plane; Admin a client with the admin's rights.
	CP    *controlplane.ControlPlane
	Admin *kubernetes.Clientset
	// Dir holds the binary, certificates and logs; it is removed after a passing run and kept
	// (its path printed) after a failing one.
	Dir string
	// Binary is the built irsa-webhook ("" with NoBinary).
	Binary string
}

// Main creates the suite's directory, builds the webhook binary while the control plane
// starts, then calls run and returns its exit code for os.Exit. Anything that fails before run
// is exit code 1, so that the suite fails rather than skips.
func Main(opts Options, run func(*Suite) int) int {
	s := &Suite{Name: opts.Name}
	dir, err := os.MkdirTemp("", "irsa-"+opts.Name+"-")
	if err != nil {
		s.Logf("%v", err)
		return 1
	}
	s.Dir = dir
	built := make(chan error, 1)
	if opts.NoBinary {
		built <- nil
	} else {
		s.Binary = filepath.Join(dir, "irsa-webhook")
		go func() { built <- s.build() }()
	}
	code := controlplane.Main(runFunc(func() int {
		if err := <-built; err != nil {
			s.Logf("build: %v", err)
			return 1
		}
		var err error
		if s.Admin, err = kubernetes.NewForConfig(s.CP.Config()); err != nil {
			s.Logf("admin client: %v", err)
			return 1
		}
		return run(s)
	}), opts.ControlPlane, func(c *controlplane.ControlPlane) { s.CP = c })
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		s.Logf("webhook logs kept in %s", dir)
	}
	return code
}

// runFunc is a testing.M for controlplane.Main.
type runFunc func() int

func (f runFunc) Run() int { return f() }

func (s *Suite) build() error {
	ctx, cancel := context.WithTimeout(context.Background(), BuildTimeout)
	defer cancel()
	began := time.Now()
	root, err := webhookproc.ModuleRoot(ctx)
	if err == nil {
		err = webhookproc.Build(ctx, root, s.Binary)
	}
	if err == nil {
		s.Logf("webhook built in %v", time.Since(began).Round(time.Millisecond))
	}
	return err
}

// Logf prints a line of the suite's set-up or tear-down to os.Stderr.
func (s *Suite) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", s.Name, fmt.Sprintf(format, args...))
}

// WarningClient returns an admin clientset whose warnings (the webhooks' admission warnings
// among them) are collected.
func (s *Suite) WarningClient() (*kubernetes.Clientset, *controlplane.Warnings) {
	w := &controlplane.Warnings{}
	cfg := s.CP.Config()
	cfg.WarningHandler = w
	return kubernetes.NewForConfigOrDie(cfg), w
}

// RunBinary runs the suite's irsa-webhook with args and exactly env (nothing of this process's
// environment), and returns its stdout and exit code; stderr goes to the test log when the exit
// code is not 0. A binary that cannot be run, or runs past timeout, fails the test.
func (s *Suite) RunBinary(t testing.TB, timeout time.Duration, env []string, args ...string) (stdout string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Binary, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		if errOut.Len() > 0 {
			t.Logf("irsa-webhook %s: stderr: %s", args[0], errOut.String())
		}
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("run irsa-webhook %q: %v\n%s", args, err, errOut.String())
	return "", -1
}
