package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

const (
	tIssuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
	tRole   = "arn:aws:iam::123456789012:role/S3WriterRole"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrustPolicyThenCheck(t *testing.T) {
	req := []string{"--role-arn", tRole, "--issuer", tIssuer, "--namespace", "production", "--service-account", "s3-writer"}
	code, policy, errOut := runCmd(t, "", append([]string{"trust", "policy"}, req...)...)
	if code != 0 {
		t.Fatalf("trust policy: code %d: %s", code, errOut)
	}
	file := writeFile(t, "policy.json", policy)
	undetermined := writeFile(t, "undetermined.json", strings.Replace(policy, `"StringEquals": {`, `"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "StringEquals": {`, 1))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"trusted", append([]string{"--policy-file", file}, req...), exitOK, "TRUSTED: role " + tRole + " trusts system:serviceaccount:production:s3-writer"},
		{"other namespace", []string{"--policy-file", file, "--role-arn", tRole, "--issuer", tIssuer, "--namespace", "staging", "--service-account", "s3-writer"}, exitFail,
			`sub StringEquals "system:serviceaccount:production:s3-writer" does not match "system:serviceaccount:staging:s3-writer"`},
		{"other audience", append([]string{"--policy-file", file, "--audience", "other"}, req...), exitFail, "NOT TRUSTED"},
		{"unknown condition key", append([]string{"--policy-file", undetermined}, req...), exitUndetermined, "UNDETERMINED"},
		{"json", append([]string{"--policy-file", file, "-o", "json"}, req...), exitOK, `"result": "trusted"`},
		{"bad input reported together", []string{"--role-arn", "nope", "--issuer", "http://x"}, exitUsage, ""},
		// The README: exit 2 is bad input, and a policy file that is not a valid policy is bad input.
		{"unparseable policy file", append([]string{"--policy-file", writeFile(t, "bad.json", "{nope")}, req...), exitUsage, ""},
		{"policy file with an unknown element", append([]string{"--policy-file", writeFile(t, "resource.json", strings.Replace(policy, `"Effect"`, `"Resource": "*", "Effect"`, 1))}, req...), exitUsage, ""},
		{"policy file IAM would refuse: Effect in lower case", append([]string{"--policy-file", writeFile(t, "lower.json", strings.Replace(policy, `"Allow"`, `"allow"`, 1))}, req...), exitUsage, ""},
		{"missing policy file", append([]string{"--policy-file", "/nonexistent/p.json"}, req...), exitUsage, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, "", append([]string{"trust", "check"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d; out %q err %q", code, tc.wantCode, out, errOut)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Errorf("stdout %q lacks %q", out, tc.wantOut)
			}
			if tc.wantCode == exitUsage && errOut == "" {
				t.Error("bad input without an error message")
			}
		})
	}
	t.Run("bad input names every problem", func(t *testing.T) {
		_, _, errOut := runCmd(t, "", "trust", "check", "--role-arn", "nope", "--issuer", "http://x")
		for _, want := range []string{"--role-arn", "--issuer", "--namespace and --service-account are required"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q: %s", want, errOut)
			}
		}
	})
}

// TestTrustCheckAsksIAM runs the check through the real SDK against the local IAM
// endpoint, configured the way users do: AWS_ENDPOINT_URL and credentials in the env.
func TestTrustCheckAsksIAM(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	_, policy, _ := runCmd(t, "", "trust", "policy", "--role-arn", tRole, "--issuer", tIssuer, "--namespace", "production", "--service-account", "s3-writer")
	srv.PutRole(tRole, policy)
	const unreadable = "arn:aws:iam::123456789012:role/Unreadable"
	srv.PutRole(unreadable, "{nope")
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "", "AWS_ENDPOINT_URL_IAM": "", "AWS_ENDPOINT_URL_STS": "", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
	} {
		t.Setenv(k, v)
	}
	tests := []struct {
		name     string
		role, ns string
		fault    string
		wantCode int
		wantOut  string
	}{
		{"trusted", tRole, "production", "", exitOK, "TRUSTED"},
		{"not trusted", tRole, "staging", "", exitFail, "does not match"},
		{"missing role", "arn:aws:iam::123456789012:role/Missing", "production", "", exitFail, "does not exist"},
		{"throttled", "arn:aws:iam::123456789012:role/Other", "production", iamserver.CodeThrottling, exitUndetermined, "throttled"},
		// A policy fetched from IAM that cannot be read is not the user's input: undetermined.
		{"unreadable policy from IAM", unreadable, "production", "", exitUndetermined, "cannot parse"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetFault(tc.fault)
			defer srv.SetFault("")
			code, out, errOut := runCmd(t, "", "trust", "check", "-o", "json", "--role-arn", tc.role, "--issuer", tIssuer, "--namespace", tc.ns, "--service-account", "s3-writer")
			if code != tc.wantCode {
				t.Fatalf("code %d, want %d: %s %s", code, tc.wantCode, out, errOut)
			}
			var v struct{ Result string }
			if err := json.Unmarshal([]byte(out), &v); err != nil || !strings.Contains(strings.ToLower(out), strings.ToLower(tc.wantOut)) {
				t.Errorf("output %q (%v) lacks %q", out, err, tc.wantOut)
			}
		})
	}
}

// TestIAMRateFlags: --iam-rate-limit and --iam-rate-burst parse and are bounded.
func TestIAMRateFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" = valid
	}{
		{name: "defaults", args: nil},
		{name: "fractional rate", args: []string{"--iam-rate-limit=0.5", "--iam-rate-burst=1"}},
		{name: "zero rate", args: []string{"--iam-rate-limit=0"}, wantErr: "--iam-rate-limit 0 must be within (0, 1000]"},
		{name: "negative rate", args: []string{"--iam-rate-limit=-1"}, wantErr: "--iam-rate-limit -1"},
		{name: "rate too high", args: []string{"--iam-rate-limit=5000"}, wantErr: "--iam-rate-limit 5000"},
		{name: "zero burst", args: []string{"--iam-rate-burst=0"}, wantErr: "--iam-rate-burst 0 must be within 1-10000"},
		{name: "burst too high", args: []string{"--iam-rate-burst=20000"}, wantErr: "--iam-rate-burst 20000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newTrustOptions()
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			o.addFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			errs := errors.Join(o.validate()...)
			switch {
			case tc.wantErr == "" && errs != nil:
				t.Errorf("validate: %v", errs)
			case tc.wantErr != "" && (errs == nil || !strings.Contains(errs.Error(), tc.wantErr)):
				t.Errorf("validate = %v, want an error containing %q", errs, tc.wantErr)
			}
		})
	}
}
