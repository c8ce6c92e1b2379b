package irsa

import (
	"strings"
	"testing"
)

// TestComposeRoleARN: with --compose-role-arn a role annotation may name the role by its name
// or path/name; it is completed with the webhook's own partition and account, and nothing is
// injected while that account is not known.
func TestComposeRoleARN(t *testing.T) {
	known := func() (Account, bool) { return Account{Partition: "aws-cn", ID: "123456789012"}, true }
	unknown := func() (Account, bool) { return Account{}, false }
	tests := []struct {
		name        string
		compose     func() (Account, bool)
		allowed     []string
		role        string
		wantOutcome Decision
		wantARN     string
		wantWarning string
	}{
		{name: "a role name is completed", compose: known, role: "app", wantOutcome: Inject, wantARN: "arn:aws-cn:iam::123456789012:role/app"},
		{name: "a path/name is completed", compose: known, role: "team/a/app", wantOutcome: Inject, wantARN: "arn:aws-cn:iam::123456789012:role/team/a/app"},
		{name: "surrounding spaces are trimmed", compose: known, role: "  app\n", wantOutcome: Inject, wantARN: "arn:aws-cn:iam::123456789012:role/app"},
		{name: "an ARN is used as written", compose: known, role: "arn:aws:iam::210987654321:role/other", wantOutcome: Inject, wantARN: "arn:aws:iam::210987654321:role/other"},
		{name: "account unknown: nothing injected", compose: unknown, role: "app", wantOutcome: RoleNotComposed, wantWarning: "not known yet"},
		{name: "account unknown: an ARN still works", compose: unknown, role: "arn:aws:iam::210987654321:role/other", wantOutcome: Inject, wantARN: "arn:aws:iam::210987654321:role/other"},
		{name: "an invalid name is refused", compose: known, role: "app name", wantOutcome: InvalidAnnotation, wantWarning: "space"},
		{name: "a leading slash is refused", compose: known, role: "/app", wantOutcome: InvalidAnnotation, wantWarning: "path"},
		{name: "an almost-ARN is not a name", compose: known, role: "arn:aws:iam::1:role/x", wantOutcome: InvalidAnnotation, wantWarning: "12 digits"},
		{name: "the composed account is subject to --allowed-role-accounts", compose: known, allowed: []string{"210987654321"}, role: "app", wantOutcome: InvalidAnnotation, wantWarning: "not allowed"},
		{name: "without the flag a name is invalid", role: "app", wantOutcome: InvalidAnnotation, wantWarning: "not of the form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDefaults()
			d.ComposeAccount, d.AllowedRoleAccounts = tc.compose, tc.allowed
			sa := Object{Namespace: "ns", Name: "sa", Annotations: map[string]string{Key(d.AnnotationPrefix, RoleARNAnnotation): tc.role}}
			s, outcome, warnings := ForServiceAccount(sa, d)
			if outcome != tc.wantOutcome {
				t.Fatalf("outcome = %s, want %s (warnings %q)", outcome, tc.wantOutcome, warnings)
			}
			if s.RoleARN != tc.wantARN {
				t.Errorf("RoleARN = %q, want %q", s.RoleARN, tc.wantARN)
			}
			if tc.wantWarning != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.wantWarning)) {
				t.Errorf("warnings = %q, want one containing %q", warnings, tc.wantWarning)
			}
			// The pod path reads the ServiceAccount the same way.
			cfg, podOutcome, _ := ConfigFor(sa, Object{Namespace: "ns", Name: "p"}, d)
			if podOutcome != tc.wantOutcome || cfg.RoleARN != tc.wantARN {
				t.Errorf("ConfigFor: outcome %s, role %q; want %s, %q", podOutcome, cfg.RoleARN, tc.wantOutcome, tc.wantARN)
			}
		})
	}
}

func TestValidRoleName(t *testing.T) {
	for _, ok := range []string{"app", "team/app", "a+=,.@_-b"} {
		if err := ValidRoleName(ok); err != nil {
			t.Errorf("ValidRoleName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a//b", "team/", "a b", strings.Repeat("a", 65)} {
		if err := ValidRoleName(bad); err == nil {
			t.Errorf("ValidRoleName(%q) = nil, want an error", bad)
		}
	}
}
