package doctor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// Decisions of IAM's policy simulator.
const (
	DecisionAllowed      = "allowed"
	DecisionExplicitDeny = "explicitDeny"
)

// awsChecks are the checks STS and the service make when the pod's SDK uses its token.
func awsChecks(f Facts, s irsa.Settings, hasRole bool) []Check {
	names := []string{CheckOIDCProvider, CheckAudience, CheckTrustPolicy}
	if f.Simulation != nil {
		names = append(names, CheckPermission)
	}
	if !hasRole {
		out := make([]Check, 0, len(names))
		for _, n := range names {
			out = append(out, Check{Name: n, Status: Unknown, Message: "not checked: the ServiceAccount names no valid role"})
		}
		return out
	}
	provider, audience := providerChecks(f, s)
	out := []Check{provider, audience, trustCheck(f, s, provider.Status == Fail || audience.Status == Fail)}
	if f.Simulation != nil {
		out = append(out, permissionCheck(f, s))
	}
	return out
}

func providerChecks(f Facts, s irsa.Settings) (provider, audience Check) {
	provider = Check{Name: CheckOIDCProvider}
	audience = Check{Name: CheckAudience}
	unknown := func(msg string) (Check, Check) {
		provider.Status, provider.Message = Unknown, msg
		audience.Status, audience.Message = Unknown, "not checked: the OIDC provider is unknown"
		return provider, audience
	}
	arn, _ := irsa.ParseRoleARN(s.RoleARN)
	switch {
	case f.IssuerErr != nil:
		return unknown("cannot read the cluster's issuer from the API server: " + f.IssuerErr.Error())
	case f.CallerErr != nil:
		return unknown("cannot tell which AWS account the credentials belong to: " + f.CallerErr.Error())
	case f.CallerAccount != arn.AccountID:
		return unknown(fmt.Sprintf("the role is in account %s but the AWS credentials are of account %s, whose OIDC providers are not the role's; run doctor with credentials of account %s", arn.AccountID, f.CallerAccount, arn.AccountID))
	case f.ProviderErr != nil:
		return unknown("cannot list the IAM OIDC providers of account " + arn.AccountID + ": " + f.ProviderErr.Error())
	case f.Provider == nil:
		provider.Status = Fail
		provider.Message = fmt.Sprintf("%s does not exist: the cluster's issuer %s is not an IAM OIDC provider in account %s, so STS answers InvalidIdentityToken (No OpenIDConnect provider found in your account for %s)",
			claim(f, s, trustpolicy.ClaimProvider), f.Issuer, arn.AccountID, f.Issuer)
		provider.Fix = fmt.Sprintf("aws iam create-open-id-connect-provider --url %s --client-id-list %s", f.Issuer, s.Audience)
		audience.Status, audience.Message = Unknown, "not checked: there is no OIDC provider"
		return provider, audience
	}
	provider.Status, provider.Message = OK, fmt.Sprintf("the cluster's issuer %s is IAM OIDC provider %s", f.Issuer, f.Provider.ARN)
	if slices.Contains(f.Provider.ClientIDs, s.Audience) {
		audience.Status, audience.Message = OK, fmt.Sprintf("the token's %s is a client ID of the provider", claim(f, s, trustpolicy.ClaimAudience))
		return provider, audience
	}
	audience.Status = Fail
	audience.Message = fmt.Sprintf("the token's %s is not among the client IDs [%s] of %s, so STS answers InvalidIdentityToken (Incorrect token audience)",
		claim(f, s, trustpolicy.ClaimAudience), strings.Join(f.Provider.ClientIDs, ", "), claim(f, s, trustpolicy.ClaimProvider))
	audience.Fix = fmt.Sprintf("aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn %s --client-id %s", f.Provider.ARN, s.Audience)
	return provider, audience
}

// claim names one claim of the pod's token in the words of the trust check's verdicts
// (serviceaccount.Verdict.Describe), so that a ✗ line and the ServiceAccount's admission
// warning name the same cause alike: sub "system:serviceaccount:NS:NAME", aud "AUDIENCE",
// the OIDC provider "ARN" (the one STS looks for: the issuer's, in the role's account).
func claim(f Facts, s irsa.Settings, c trustpolicy.Claim) string {
	r := trustpolicy.Request{RoleARN: s.RoleARN, IssuerURL: f.Issuer, Namespace: f.Namespace, ServiceAccount: f.ServiceAccountName, Audience: s.Audience}
	v := serviceaccount.Verdict{Subject: trustpolicy.SubjectPrefix + f.Namespace + ":" + f.ServiceAccountName, Audience: s.Audience, Provider: r.Provider()}
	return v.Describe(c)
}

// trustCheck reports the trust check's verdict for the pod's token. STS evaluates the trust
// policy only for a token whose issuer and audience it accepted: after a ✗ above (tokenRejected)
// STS's answer is InvalidIdentityToken, and AccessDenied only once that is fixed.
func trustCheck(f Facts, s irsa.Settings, tokenRejected bool) Check {
	c := Check{Name: CheckTrustPolicy}
	v := f.Trust
	if v == nil {
		c.Status, c.Message = Unknown, "not checked"
		return c
	}
	switch v.Result {
	case trustpolicy.Trusted:
		c.Status, c.Message = OK, v.Summary()
	case trustpolicy.NotTrusted:
		c.Status = Fail
		sts := ": STS answers AccessDenied (Not authorized to perform sts:AssumeRoleWithWebIdentity)"
		if tokenRejected {
			sts = ": once STS accepts the token (above), it answers AccessDenied (Not authorized to perform sts:AssumeRoleWithWebIdentity)"
		}
		c.Message = v.Summary() + sts
		c.Fix = fmt.Sprintf("irsa-webhook trust policy --role-arn %s --issuer %s --namespace %s --service-account %s --audience %s prints a trust policy that does; add its statement to the role's (aws iam update-assume-role-policy)",
			s.RoleARN, f.Issuer, f.Namespace, f.ServiceAccountName, s.Audience)
	default:
		c.Status, c.Message = Unknown, v.Summary()
	}
	return c
}

func permissionCheck(f Facts, s irsa.Settings) Check {
	c := Check{Name: CheckPermission}
	sim := f.Simulation
	what := fmt.Sprintf("%s on %s", sim.Action, sim.Resource)
	switch {
	case sim.Err != nil:
		c.Status, c.Message = Unknown, "cannot simulate "+what+" for role "+s.RoleARN+": "+sim.Err.Error()
	case sim.Decision == DecisionAllowed:
		c.Status, c.Message = OK, fmt.Sprintf("role %s may %s (policy %s)", s.RoleARN, what, strings.Join(sim.MatchedPolicies, ", "))
	case sim.Decision == DecisionExplicitDeny:
		c.Status = Fail
		c.Message = fmt.Sprintf("role %s is explicitly denied %s by policy %s: the call fails with AccessDenied", s.RoleARN, what, strings.Join(sim.MatchedPolicies, ", "))
		c.Fix = "remove or narrow the Deny statement of " + strings.Join(sim.MatchedPolicies, ", ")
	default:
		c.Status = Fail
		c.Message = fmt.Sprintf("no policy of role %s allows %s (IAM: %s): the call fails with AccessDenied", s.RoleARN, what, sim.Decision)
		c.Fix = fmt.Sprintf(`attach a policy to the role allowing it: aws iam put-role-policy --role-name %s --policy-name %s --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"%s","Resource":"%s"}]}'`,
			roleName(s.RoleARN), "allow-"+strings.NewReplacer(":", "-", "*", "all").Replace(sim.Action), sim.Action, sim.Resource)
	}
	return c
}

func roleName(arn string) string {
	a, err := irsa.ParseRoleARN(arn)
	if err != nil {
		return arn
	}
	return a.Name
}
