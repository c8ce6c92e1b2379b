package serviceaccount_test

import (
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// TestTenantSummary pins the requester's line for each kind of verdict. It is built from
// the verdict's claims and cause only: the Reasons (which quote the policy) never show.
func TestTenantSummary(t *testing.T) {
	const (
		role     = "arn:aws:iam::123456789012:role/App"
		provider = "arn:aws:iam::123456789012:oidc-provider/oidc.example.com/id/X"
		secret   = "statement 0: sub StringEquals \"system:serviceaccount:payments:billing\""
	)
	base := serviceaccount.Verdict{RoleARN: role, Subject: "system:serviceaccount:team-b:app", Audience: "sts.amazonaws.com", Provider: provider, Reasons: []string{secret}}
	with := func(r trustpolicy.Result, cause string, claims ...trustpolicy.Claim) serviceaccount.Verdict {
		v := base
		v.Result, v.Cause, v.Claims = r, cause, claims
		return v
	}
	head := `role ` + role + ` does not trust system:serviceaccount:team-b:app (audience "sts.amazonaws.com"): `
	unverified := `trust of role ` + role + ` for system:serviceaccount:team-b:app not verified: `
	cases := []struct {
		name string
		v    serviceaccount.Verdict
		want string
	}{
		{"trusted", with(trustpolicy.Trusted, ""), `role ` + role + ` trusts system:serviceaccount:team-b:app (audience "sts.amazonaws.com")`},
		{"sub", with(trustpolicy.NotTrusted, "", trustpolicy.ClaimSubject),
			head + `its trust policy does not accept sub "system:serviceaccount:team-b:app"`},
		{"sub and aud", with(trustpolicy.NotTrusted, "", trustpolicy.ClaimSubject, trustpolicy.ClaimAudience),
			head + `its trust policy does not accept sub "system:serviceaccount:team-b:app" and aud "sts.amazonaws.com"`},
		{"action", with(trustpolicy.NotTrusted, "", trustpolicy.ClaimAction),
			head + `its trust policy does not accept the action sts:AssumeRoleWithWebIdentity`},
		{"provider, or no such role", with(trustpolicy.NotTrusted, "", trustpolicy.ClaimProvider),
			head + `the role does not exist or its trust policy does not accept tokens from the OIDC provider "` + provider + `"`},
		{"no claim named", with(trustpolicy.NotTrusted, ""),
			head + `the role does not exist or its trust policy does not accept tokens from the OIDC provider "` + provider + `"`},
		{"own annotation invalid", with(trustpolicy.NotTrusted, `role ARN "x" is not an ARN`), head + `role ARN "x" is not an ARN`},
		{"IAM throttled", with(trustpolicy.Undetermined, "IAM throttled"), unverified + "IAM throttled"},
		{"undecided sub and other keys", with(trustpolicy.Undetermined, "", trustpolicy.NoClaim, trustpolicy.ClaimSubject),
			unverified + `the checker cannot decide whether the trust policy accepts other values of the request (conditions the checker cannot evaluate before STS sees it) and sub "system:serviceaccount:team-b:app"`},
		{"undecided, nothing named", with(trustpolicy.Undetermined, ""), unverified + "the checker cannot decide whether the trust policy accepts this token"},
		{"trusted, with a note on its own annotation", func() serviceaccount.Verdict {
			v := with(trustpolicy.Trusted, "")
			v.Notes = []string{"annotation eks.amazonaws.com/audience ignored"}
			return v
		}(), `role ` + role + ` trusts system:serviceaccount:team-b:app (audience "sts.amazonaws.com"); annotation eks.amazonaws.com/audience ignored`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.v.TenantSummary()
			if got != tc.want {
				t.Errorf("TenantSummary()\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(got, "payments") {
				t.Errorf("the policy shows through: %q", got)
			}
			full := tc.v.Summary()
			if !strings.Contains(full, secret) {
				t.Errorf("Summary() %q lacks the full reasons", full)
			}
			// The admin's line (doctor, trust check, detailed warnings) names the failed
			// claims in the tenant's words before quoting the policy.
			if tc.v.Result != trustpolicy.Trusted && !strings.HasPrefix(full, got) {
				t.Errorf("Summary()\n %q\ndoes not start with TenantSummary()\n %q", full, got)
			}
		})
	}
}
