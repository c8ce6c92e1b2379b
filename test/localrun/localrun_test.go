package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExit runs the demo with --exit as `make run` would, and checks what a new user reads:
// the injected role, the token's subject, no log lines, and nothing left behind.
func TestExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // cold builds take longer: see README
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--exit"}, &stdout, &stderr); err != nil {
		t.Fatalf("run --exit: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Logf("output:\n%s", out)

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
	if strings.Contains(out, `"level":`) || strings.Contains(stderr.String(), `"level":`) {
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
