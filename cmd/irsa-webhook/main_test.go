package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/yaml"
)

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, streams{strings.NewReader(stdin), &out, &errb})
	code = exitCode(err, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "irsa-webhook ") {
		t.Fatalf("code %d, out %q", code, out)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, errOut := runCmd(t, "", "frobnicate"); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd(t, ""); code != exitUsage {
		t.Fatalf("no command: code %d", code)
	}
}

func TestServeReportsAllBadFlagsAtOnce(t *testing.T) {
	code, _, errOut := runCmd(t, "", "serve",
		"--token-expiration=10", "--port=0", "--log-format=xml", "--log-level=loud", "--tls-min-version=1.0",
		"--tls-cipher-suites=TLS_RSA_WITH_RC4_128_SHA", "--aws-default-region=nowhere", "--service-account-lookup-timeout=1m")
	if code != exitUsage {
		t.Fatalf("code %d, want %d; stderr %q", code, exitUsage, errOut)
	}
	for _, want := range []string{"token expiration 10", "--port 0", "--log-format", "--log-level", "--tls-min-version", "--tls-cipher-suites", "region", "--service-account-lookup-timeout"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not report %q:\n%s", want, errOut)
		}
	}
}

func TestServeUnknownFlag(t *testing.T) {
	if code, _, errOut := runCmd(t, "", "serve", "--no-such-flag"); code != exitUsage || !strings.Contains(errOut, "no-such-flag") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
}

func TestMutate(t *testing.T) {
	const sa = "../../deploy/examples/serviceaccount.yaml"
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErr    string   // substring of stderr
		wantParsed bool     // stdout must parse as YAML/JSON
	}{
		{name: "deployment yaml", args: []string{"--service-account", sa, "../../deploy/examples/deployment.yaml"},
			wantOut: []string{"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/S3WriterRole", "aws-iam-token", "ap-south-1"}, wantParsed: true},
		{name: "cronjob", args: []string{"--service-account", sa, "testdata/cronjob.yaml"},
			wantOut: []string{"jobTemplate", "AWS_WEB_IDENTITY_TOKEN_FILE"}, wantParsed: true},
		{name: "statefulset json to json with region", args: []string{"--service-account", sa, "-o", "json", "--aws-default-region", "eu-west-1", "testdata/statefulset.json"},
			wantOut: []string{`"AWS_DEFAULT_REGION"`, `"eu-west-1"`}, wantParsed: true},
		{name: "stdin", args: []string{"--service-account", sa, "-"}, stdin: "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: production}\nspec:\n  serviceAccountName: s3-writer\n  containers: [{name: a, image: a}]\n",
			wantOut: []string{"AWS_ROLE_ARN"}, wantParsed: true},
		{name: "daemonset", args: []string{"--service-account", sa, "testdata/daemonset.yaml"}, wantOut: []string{"kind: DaemonSet", "AWS_ROLE_ARN", "aws-iam-token"}, wantParsed: true},
		{name: "replicaset json, init container too", args: []string{"--service-account", sa, "-o", "json", "testdata/replicaset.json"},
			wantOut: []string{`"initContainers"`, `"AWS_WEB_IDENTITY_TOKEN_FILE"`}, wantParsed: true},
		{name: "job", args: []string{"--service-account", sa, "testdata/job.yaml"}, wantOut: []string{"kind: Job", "AWS_ROLE_ARN"}, wantParsed: true},
		{name: "another service account is left alone", args: []string{"--service-account", sa, "testdata/other-sa.yaml"},
			wantErr: `runs as serviceaccount "someone-else"`, wantParsed: true},
		{name: "unsupported kind", args: []string{"--service-account", sa, "testdata/configmap.yaml"}, wantCode: exitUsage, wantErr: `kind "ConfigMap" is not supported`},
		{name: "unparseable", args: []string{"--service-account", sa, "-"}, stdin: "{not json", wantCode: exitUsage, wantErr: "not valid JSON"},
		{name: "missing file", args: []string{"--service-account", sa, "testdata/nope.yaml"}, wantCode: exitUsage, wantErr: "no such file"},
		{name: "missing service account flag", args: []string{"testdata/cronjob.yaml"}, wantCode: exitUsage, wantErr: "--service-account is required"},
		{name: "service account file is not one", args: []string{"--service-account", "testdata/cronjob.yaml", "testdata/cronjob.yaml"}, wantCode: exitUsage, wantErr: "want kind ServiceAccount"},
		{name: "bad output format", args: []string{"--service-account", sa, "-o", "xml", "testdata/cronjob.yaml"}, wantCode: exitUsage, wantErr: `-o "xml"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.stdin, append([]string{"mutate"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.wantErr)
			}
			if code != 0 && strings.Count(strings.TrimSpace(errOut), "\n") > 0 && !strings.Contains(errOut, "invalid flags") {
				t.Errorf("error is not one line: %q", errOut)
			}
			if tc.wantParsed {
				var v map[string]any
				if err := yaml.Unmarshal([]byte(out), &v); err != nil || v["kind"] == nil {
					t.Errorf("stdout is not a manifest (%v):\n%s", err, out)
				}
			}
		})
	}
}

// TestGNUStyleCommandLine: flags anywhere on the line, GNU-style help per command, long and
// short forms, as kubectl and helm parse them.
func TestGNUStyleCommandLine(t *testing.T) {
	const sa = "../../deploy/examples/serviceaccount.yaml"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		{name: "flags after the file", args: []string{"mutate", "testdata/job.yaml", "-o", "json", "--service-account", sa},
			wantOut: []string{`"AWS_ROLE_ARN"`}},
		{name: "long output flag, = form", args: []string{"mutate", "--output=json", "--service-account=" + sa, "testdata/job.yaml"},
			wantOut: []string{`"AWS_ROLE_ARN"`}},
		{name: "flags between trust subcommand arguments", args: []string{"trust", "policy", "--role-arn", tRole, "--namespace", "production",
			"--issuer", tIssuer, "--service-account", "s3-writer"}, wantOut: []string{"system:serviceaccount:production:s3-writer"}},
		{name: "doctor flags before and after its arguments", args: []string{"doctor", "-o", "xml", "pod", "p", "-n", "ns", "--timeout", "2m"},
			wantCode: exitUsage, wantErr: `-o "xml" must be text or json`},
		{name: "serve help", args: []string{"serve", "--help"},
			wantOut: []string{"Usage:\n  irsa-webhook serve [flags]", "      --tls-cert-file string", "  -v, --v int", "--excluded-namespaces strings"}},
		{name: "mutate help", args: []string{"mutate", "-h"}, wantOut: []string{"  -o, --output string", "--service-account string"}},
		{name: "trust check help", args: []string{"trust", "check", "--help"}, wantOut: []string{"--policy-file string", "--role-arn string"}},
		{name: "doctor help", args: []string{"help", "doctor"}, wantOut: []string{"  -n, --namespace string"}},
		{name: "top help lists the commands", args: []string{"--help"}, wantOut: []string{"serve", "mutate", "trust", "doctor", "completion", "version"}},
		{name: "version flag", args: []string{"--version"}, wantOut: []string{"irsa-webhook dev (commit unknown)"}},
		{name: "single-dash long flag is refused", args: []string{"serve", "-port=1"}, wantCode: exitUsage, wantErr: "shorthand"},
		{name: "unknown flag", args: []string{"mutate", "--frob", "x"}, wantCode: exitUsage, wantErr: "unknown flag: --frob"},
		{name: "serve takes no arguments", args: []string{"serve", "extra"}, wantCode: exitUsage, wantErr: `"extra"`},
		{name: "trust without subcommand", args: []string{"trust"}, wantCode: exitUsage, wantErr: "trust: no subcommand given"},
		{name: "trust unknown subcommand", args: []string{"trust", "frob"}, wantCode: exitUsage, wantErr: `trust: unknown subcommand "frob"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", tc.args...)
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d; stdout %q stderr %q", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.wantErr)
			}
		})
	}
}

// TestCompletion: cobra's generators write a completion script for each shell.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "__start_irsa-webhook",
		"zsh":  "#compdef irsa-webhook",
		"fish": "complete -c irsa-webhook",
	} {
		t.Run(shell, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", "completion", shell)
			if code != exitOK || !strings.Contains(out, want) {
				t.Fatalf("code %d, stderr %q; stdout lacks %q:\n%.300s", code, errOut, want, out)
			}
		})
	}
	// What the shell asks for when completing `irsa-webhook doctor <TAB>`.
	code, out, _ := runCmd(t, "", "__complete", "doctor", "")
	if code != exitOK || !strings.Contains(out, "pod\n") || !strings.Contains(out, "serviceaccount\n") {
		t.Fatalf("doctor completion: code %d:\n%s", code, out)
	}
}

// TestVerbosity: klog's -v N is accepted in its three spellings and becomes zap level -N
// (logr's V(N)); without it --log-level decides.
func TestVerbosity(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    zapcore.Level
		wantErr string
	}{
		{name: "default", args: nil, want: zapcore.InfoLevel},
		{name: "log level", args: []string{"--log-level=warn"}, want: zapcore.WarnLevel},
		{name: "-v=4 as the reference's deployment writes it", args: []string{"-v=4"}, want: zapcore.Level(-4)},
		{name: "-v 1 is debug", args: []string{"-v", "1"}, want: zapcore.DebugLevel},
		{name: "--v=2", args: []string{"--v=2"}, want: zapcore.Level(-2)},
		{name: "-v 0 is info even with --log-level=error", args: []string{"--log-level=error", "-v", "0"}, want: zapcore.InfoLevel},
		{name: "too verbose", args: []string{"-v=11"}, wantErr: "-v 11 must be within 0-10"},
		{name: "negative", args: []string{"-v=-1"}, wantErr: "-v -1 must be within 0-10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newServeOptions()
			cmd := newServeCommand(o)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("validate = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if got := o.zapLevel(); got != tc.want {
				t.Errorf("level %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMutateMatchesWebhookGolden runs mutate on golden cases of the pod webhook
// (webhook/pod/testdata, default flags): it prints the pod the webhook admits (want.yaml)
// and, on stderr, the webhook's admission warnings (warnings.txt, without the webhook's
// "irsa-webhook: " prefix).
func TestMutateMatchesWebhookGolden(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "irsa-webhook") // the default excluded namespace, not the cases'
	for _, name := range []string{"basic", "existing-volume-and-mounts", "mount-path-conflict", "mount-path-conflict-every-container", "windows-beta-node-selector"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "webhook", "pod", "testdata", name)
			code, out, errOut := runCmd(t, "", "mutate", "--service-account", filepath.Join(dir, "serviceaccount.yaml"), filepath.Join(dir, "pod.yaml"))
			if code != 0 {
				t.Fatalf("code %d; stderr %q", code, errOut)
			}
			want, err := os.ReadFile(filepath.Join(dir, "want.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("stdout differs from %s/want.yaml\n--- want\n%s--- got\n%s", dir, want, out)
			}
			warnings, err := os.ReadFile(filepath.Join(dir, "warnings.txt"))
			if err != nil {
				t.Fatal(err)
			}
			wantErr := strings.ReplaceAll(string(warnings), "irsa-webhook: ", "Warning: ")
			if errOut != wantErr {
				t.Errorf("stderr differs from %s/warnings.txt\n--- want\n%s--- got\n%s", dir, wantErr, errOut)
			}
		})
	}
}
