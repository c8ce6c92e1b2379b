package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// asMainEnv set to 1 makes this test binary run the demo's main instead of the tests, so
// that TestInterrupt can run the program as `make run` does: a process of its own.
const asMainEnv = "IRSA_LOCALRUN_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// checkOutput checks the demo's report and that every temporary directory it names is gone.
func checkOutput(t *testing.T, out, stderr string) {
	t.Helper()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s+AWS_ROLE_ARN=arn:aws:iam::123456789012:role/S3WriterRole\s`),
		regexp.MustCompile(`(?m)^\s+AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks\.amazonaws\.com/serviceaccount/token\s`),
		regexp.MustCompile(`(?m)^\s+sub\s+system:serviceaccount:production:s3-writer$`),
		regexp.MustCompile(`(?m)^\s+aud\s+sts\.amazonaws\.com$`),
		regexp.MustCompile(`(?m)^\s+iss\s+` + regexp.QuoteMeta(issuer) + `$`),
		regexp.MustCompile(`(?m)^Step 4 .*\n\s+trust check: the role trusts system:serviceaccount:production:s3-writer \(no warning\)\nStep 5 .*\nStep 6 `),
		regexp.MustCompile(`(?m)^Step 3 .*trust-policies/S3WriterRole\.json$`),
		// The tenant reads which of its own claims failed, not what the policy trusts.
		regexp.MustCompile(`(?m)^\s+Warning: irsa-webhook: role arn:aws:iam::123456789012:role/S3WriterRole does not trust system:serviceaccount:staging:s3-writer .*its trust policy does not accept sub "system:serviceaccount:staging:s3-writer"$`),
		// Step 6 for real: the SDK's default chain got the assumed-role session from the local STS.
		regexp.MustCompile(`(?m)^\s+"Arn": "arn:aws:sts::123456789012:assumed-role/S3WriterRole/[^"]+"$`),
		regexp.MustCompile(`(?m)^\s+"UserId": "AROA[A-Z0-9]+:[^"]+",$`),
		// The debugging section's three failures, each with AWS's code (or the SDK's lack of
		// credentials) and doctor's verdict.
		regexp.MustCompile(`(?m)^\s+SDK: AccessDenied from sts:AssumeRoleWithWebIdentity: Not authorized to perform sts:AssumeRoleWithWebIdentity\n\s+doctor: ✗ trust-policy `),
		regexp.MustCompile(`(?m)^\s+SDK: InvalidIdentityToken from sts:AssumeRoleWithWebIdentity: No OpenIDConnect provider found in your account for ` + regexp.QuoteMeta(issuer) + `\n\s+doctor: ✗ oidc-provider `),
		regexp.MustCompile(`(?m)^\s+SDK: no credentials \(no AWS_ROLE_ARN .*get credentials: failed to refresh cached credentials.*\n\s+doctor: ✗ service-account .*NoCredentialProviders`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s", want)
		}
	}
	if strings.Contains(out, `"level":`) || strings.Contains(stderr, `"level":`) {
		t.Errorf("webhook log lines reached the terminal")
	}
	// Everything printed as a temporary path must be gone.
	tmp := regexp.MustCompile(regexp.QuoteMeta(os.TempDir())+`/irsa-[a-z]+-[0-9]+`).FindAllString(out, -1)
	if len(tmp) == 0 {
		t.Errorf("output names no temporary directory (the webhook log is in one)")
	}
	for _, m := range tmp {
		if _, err := os.Stat(m); !os.IsNotExist(err) {
			t.Errorf("%s is left behind (stat: %v)", m, err)
		}
	}
}

// TestInterrupt runs the demo as `make run` does (the program as a process of its own, in the
// foreground of a terminal), checks what a new user reads (the injected role, the token's
// subject, step 6's answer and the debugging section, no log lines), waits until it keeps the
// cluster running, and presses Ctrl-C: SIGINT to its whole process group, which holds etcd,
// kube-apiserver and the webhook too. It must stop everything, remove its files and exit 0.
// (One run of the demo for both: it starts a control plane and builds the webhook.)
func TestInterrupt(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, exitEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, asMainEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a job of its own, as a shell starts it
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	defer func() {
		select {
		case err := <-exited:
			_ = err // reported where it was received first
		default: // the test failed before the demo ended: stop its whole group
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Logf("killed the demo: %v", <-exited)
		}
	}()

	running := make(chan struct{})
	var out lockedBuffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		announced := false
		for sc.Scan() {
			out.add(sc.Text() + "\n")
			if !announced && strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				announced = true
				close(running)
			}
		}
	}()
	go func() {
		<-read // all of stdout is read before Wait closes the pipe
		exited <- cmd.Wait()
	}()

	select {
	case <-running:
	case err := <-exited:
		exited <- err
		t.Fatalf("the demo ended before running until Ctrl-C: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), &stderr)
	case <-time.After(5 * time.Minute): // cold builds take longer: see README
		t.Fatalf("the demo did not say it keeps running within 5 minutes\nstdout:\n%s\nstderr:\n%s", out.String(), &stderr)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatalf("send SIGINT to the demo's process group: %v", err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("after Ctrl-C the demo ended with %v, want exit status 0\nstdout:\n%s\nstderr:\n%s", err, out.String(), &stderr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the demo did not end within a minute of Ctrl-C\nstdout:\n%s\nstderr:\n%s", out.String(), &stderr)
	}
	if !strings.Contains(out.String(), "Stopped the control plane and the webhook; temporary files removed.") {
		t.Errorf("the demo did not say it stopped everything:\n%s\nstderr:\n%s", out.String(), &stderr)
	}
	checkOutput(t, out.String(), stderr.String())
}

// lockedBuffer is the demo's output, read while it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
