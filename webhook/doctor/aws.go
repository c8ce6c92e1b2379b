package doctor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
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
	out := []Check{provider, audience, trustCheck(f, s)}
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
		provider.Message = fmt.Sprintf("the cluster's issuer %s is not an IAM OIDC provider in account %s: STS answers InvalidIdentityToken", f.Issuer, arn.AccountID)
		provider.Fix = fmt.Sprintf("aws iam create-open-id-connect-provider --url %s --client-id-list %s", f.Issuer, s.Audience)
		audience.Status, audience.Message = Unknown, "not checked: there is no OIDC provider"
		return provider, audience
	}
	provider.Status, provider.Message = OK, fmt.Sprintf("the cluster's issuer %s is IAM OIDC provider %s", f.Issuer, f.Provider.ARN)
	if slices.Contains(f.Provider.ClientIDs, s.Audience) {
		audience.Status, audience.Message = OK, fmt.Sprintf("the token audience %q is a client ID of the provider", s.Audience)
		return provider, audience
	}
	audience.Status = Fail
	audience.Message = fmt.Sprintf("the token audience %q is not among the provider's client IDs [%s]: STS answers InvalidIdentityToken", s.Audience, strings.Join(f.Provider.ClientIDs, ", "))
	audience.Fix = fmt.Sprintf("aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn %s --client-id %s", f.Provider.ARN, s.Audience)
	return provider, audience
}

func trustCheck(f Facts, s irsa.Settings) Check {
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
		c.Message = v.Summary() + ": STS answers AccessDenied (Not authorized to perform sts:AssumeRoleWithWebIdentity)"
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
