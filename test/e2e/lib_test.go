package e2e_test

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bash runs script with lib.sh sourced and args as $1..., and returns its stdout.
func bash(t *testing.T, script string, args ...string) (string, error) {
	t.Helper()
	// Read here so that go test's cache sees changes to lib.sh (it tracks the files a test
	// opens, not what its child processes read).
	if _, err := os.ReadFile("lib.sh"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{"-c", "set -euo pipefail; source ./lib.sh; " + script, "lib"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return string(out), err
}

func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256","kid":"k"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".c2ln"
}

// TestPodClaimsSnippet runs the snippet the test pods run (with sh, as busybox and Amazon Linux
// would) on a token file, then reads its output with the parsers the scripts use.
func TestPodClaimsSnippet(t *testing.T) {
	snippet, err := bash(t, "pod_claims_snippet")
	if err != nil {
		t.Fatalf("pod_claims_snippet: %v", err)
	}
	const iss = "https://oidc.eks.ap-south-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
	cases := []struct {
		name    string
		payload string // "" means no token file
		wantSub string
		wantAud bool
	}{
		{name: "aud list, no padding needed", payload: `{"aud":["sts.amazonaws.com"],"iss":"` + iss + `","sub":"system:serviceaccount:production:s3-writer"}`, wantSub: "system:serviceaccount:production:s3-writer", wantAud: true},
		{name: "aud list, one pad", payload: `{"aud":["sts.amazonaws.com"],"iss":"` + iss + `","sub":"system:serviceaccount:production:s3-writer1"}`, wantSub: "system:serviceaccount:production:s3-writer1", wantAud: true},
		{name: "aud list, two pads", payload: `{"aud":["sts.amazonaws.com"],"iss":"` + iss + `","sub":"system:serviceaccount:production:s3-writer12"}`, wantSub: "system:serviceaccount:production:s3-writer12", wantAud: true},
		{name: "aud string", payload: `{"aud":"sts.amazonaws.com","iss":"` + iss + `","sub":"system:serviceaccount:a:b"}`, wantSub: "system:serviceaccount:a:b", wantAud: true},
		{name: "aud list of two", payload: `{"aud":["https://kubernetes.default.svc","sts.amazonaws.com"],"iss":"` + iss + `","sub":"system:serviceaccount:a:b"}`, wantSub: "system:serviceaccount:a:b", wantAud: true},
		{name: "other audience only", payload: `{"aud":["https://kubernetes.default.svc"],"iss":"` + iss + `","sub":"system:serviceaccount:a:b"}`, wantSub: "system:serviceaccount:a:b"},
		{name: "audience prefix is not a match", payload: `{"aud":["sts.amazonaws.com.evil"],"iss":"` + iss + `","sub":"system:serviceaccount:a:b"}`, wantSub: "system:serviceaccount:a:b"},
		{name: "base64url alphabet", payload: `{"aud":["sts.amazonaws.com"],"x":"??>>??>>~~","iss":"` + iss + `","sub":"system:serviceaccount:a:b"}`, wantSub: "system:serviceaccount:a:b", wantAud: true},
		{name: "no token file"},
	}
	sawURLAlphabet := false
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			if tc.payload != "" {
				token := jwt(tc.payload)
				if strings.ContainsAny(strings.Split(token, ".")[1], "-_") {
					sawURLAlphabet = true
				}
				if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", "-c", snippet)
			cmd.Env = append(os.Environ(), "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/S3WriterRole", "AWS_WEB_IDENTITY_TOKEN_FILE="+tokenFile)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("snippet: %v", err)
			}
			got, err := bash(t, `c="$(log_value TOKEN_CLAIMS "$1")"
printf 'role=%s\n' "$(log_value AWS_ROLE_ARN "$1")"
printf 'file=%s\n' "$(log_value AWS_WEB_IDENTITY_TOKEN_FILE "$1")"
printf 'claims=%s\n' "$c"
printf 'sub=%s\n' "$(claim sub "$c")"
printf 'iss=%s\n' "$(claim iss "$c")"
if aud_has sts.amazonaws.com "$c"; then echo aud=yes; else echo aud=no; fi`, string(out))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			want := []string{
				"role=arn:aws:iam::123456789012:role/S3WriterRole",
				"file=" + tokenFile,
				"claims=" + tc.payload,
				"sub=" + tc.wantSub,
				"aud=" + map[bool]string{true: "yes", false: "no"}[tc.wantAud],
			}
			if tc.payload != "" {
				want = append(want, "iss="+iss)
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			for _, w := range want {
				if !slices.Contains(lines, w) {
					t.Errorf("missing %q in:\n%s\n(pod output:\n%s)", w, got, out)
				}
			}
		})
	}
	if !sawURLAlphabet {
		t.Error("no case exercises the base64url characters - and _: change the base64url case")
	}
}

func TestQuoteCmdRoundTrips(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{name: "plain", args: []string{"aws", "iam", "get-role", "--role-name", "S3WriterRole"}},
		{name: "spaces and quotes", args: []string{"echo", "it's a test", `"double"`, "a b"}},
		{name: "json and globs", args: []string{"--query", "[Account,Arn]", `{"a":[1,2]}`, "*", "$HOME", "`x`"}},
		{name: "empty argument", args: []string{"x", "", "y"}},
		{name: "newline", args: []string{"line1\nline2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := bash(t, `q="$(quote_cmd "$@")"; eval "set -- $q"; printf '%s\0' "$@"`, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
			if !slices.Equal(got, tc.args) {
				t.Errorf("round trip: got %q, want %q", got, tc.args)
			}
		})
	}
}

func TestRunDeferredUndoesInReverseAndKeepsGoing(t *testing.T) {
	out, err := bash(t, `defer echo first; defer false; defer echo "last one"
if run_deferred 2>/dev/null; then echo rc=0; else echo rc=1; fi
run_deferred`)
	if err != nil {
		t.Fatal(err)
	}
	want := "+ echo 'last one'\nlast one\n+ false\n+ echo first\nfirst\nrc=1\n    nothing to clean up\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
}

func TestRunPrintsAndSkipsInDryRun(t *testing.T) {
	out, err := bash(t, `DRY_RUN=1; run touch should-not-exist; x="$(capture placeholder echo real)"; echo "x=$x"`)
	if err != nil {
		t.Fatal(err)
	}
	want := "+ touch should-not-exist\n+ echo real\nx=placeholder\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if _, err := os.Stat("should-not-exist"); err == nil {
		_ = os.Remove("should-not-exist")
		t.Error("run ran its command in a dry run")
	}
}
