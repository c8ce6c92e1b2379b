package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
