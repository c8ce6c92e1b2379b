// Package scripttest runs an e2e script (run.sh of the test's directory) with fake tools first
// on PATH and checks what it called, for the tests of test/e2e/eks and test/e2e/kind.
package scripttest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// runTimeout bounds one run of the script.
const runTimeout = 60 * time.Second

// Result is what one run of run.sh did.
type Result struct {
	Stdout, Stderr string
	Code           int
	Calls          []string // "tool args..." for every fake tool invoked, in order
	State          string   // $FAKE_STATE: where fakes leave files
}

// Options describes one run.
type Options struct {
	// Fakes are tools (name -> sh script body) put first on PATH. Every fake logs its command
	// line to $FAKE_CALLS before its body runs.
	Fakes map[string]string
	// Drop names the variables of this process's environment the script must not see (those
	// it reads, so the machine's settings cannot leak in). PATH is always replaced.
	Drop func(name string) bool
	// Env is added last.
	Env []string
}

// Run runs run.sh with args.
func Run(t *testing.T, o Options, args ...string) Result {
	t.Helper()
	// Read here so that go test's cache, which tracks the files a test opens but not what its
	// child processes read, sees their changes.
	for _, f := range []string{"run.sh", "../lib.sh"} {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	bin, state := filepath.Join(dir, "bin"), filepath.Join(dir, "state")
	for _, d := range []string{bin, state} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	callLog := filepath.Join(dir, "calls.log")
	for name, body := range o.Fakes {
		script := "#!/bin/sh\nprintf '%s\\n' \"" + name + " $*\" >>\"$FAKE_CALLS\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{"run.sh"}, args...)...)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PATH" || (o.Drop != nil && o.Drop(name)) {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"FAKE_CALLS="+callLog, "FAKE_STATE="+state, "TMPDIR="+dir)
	cmd.Env = append(cmd.Env, o.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), State: state}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.Code = exitErr.ExitCode()
	default:
		t.Fatalf("run run.sh: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("run.sh did not finish in %v\nstdout:\n%s\nstderr:\n%s", runTimeout, r.Stdout, r.Stderr)
	}
	if b, err := os.ReadFile(callLog); err == nil {
		r.Calls = strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	return r
}

// IndexOf is the index of the first call containing s, or -1.
func IndexOf(calls []string, s string) int {
	return slices.IndexFunc(calls, func(c string) bool { return strings.Contains(c, s) })
}

// Want is what a run must have done.
type Want struct {
	InOrder   []string // calls containing these, in this order
	NotCalled []string // no call contains any of these
	Stdout    []string // substrings of stdout
	Stderr    []string // substrings of stderr
}

// Check reports every way r differs from w.
func (r Result) Check(t *testing.T, w Want) {
	t.Helper()
	last := -1
	for _, c := range w.InOrder {
		i := IndexOf(r.Calls[last+1:], c)
		if i < 0 {
			if IndexOf(r.Calls, c) >= 0 {
				t.Errorf("call %q out of order", c)
			} else {
				t.Errorf("no call %q", c)
			}
			continue
		}
		last += 1 + i
	}
	for _, nc := range w.NotCalled {
		if i := IndexOf(r.Calls, nc); i >= 0 {
			t.Errorf("unexpected call %q", r.Calls[i])
		}
	}
	for _, s := range w.Stdout {
		if !strings.Contains(r.Stdout, s) {
			t.Errorf("stdout lacks %q", s)
		}
	}
	for _, s := range w.Stderr {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("stderr lacks %q", s)
		}
	}
}
