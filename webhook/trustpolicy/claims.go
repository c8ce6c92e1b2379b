package trustpolicy

import "slices"

// Claim names a part of the request: what the pod's token and its STS call present. A
// finding says which claim it is about, apart from its message (which quotes the policy),
// so that a reader who may only learn about its own request (the tenant who created the
// ServiceAccount) can be told which of its claims failed, with the values it sent, and
// nothing of the policy: see Verdict.Claims.
type Claim uint8

// Claims, in the order STS meets them.
const (
	NoClaim       Claim = iota // a request value the checker cannot know (aws:SourceIp, another provider's key, ...), or none
	ClaimProvider              // the token's issuer, as the OIDC provider in the role's account (the statement's principal)
	ClaimAction                // sts:AssumeRoleWithWebIdentity
	ClaimSubject               // the sub claim, system:serviceaccount:NS:NAME
	ClaimAudience              // the aud claim
)

func (c Claim) String() string {
	switch c {
	case ClaimProvider:
		return "provider"
	case ClaimAction:
		return "action"
	case ClaimSubject:
		return "sub"
	case ClaimAudience:
		return "aud"
	}
	return "other"
}

// Outcome is what a finding says about its claim.
type Outcome uint8

// Outcomes.
const (
	Note      Outcome = iota // no verdict on the claim: what grants trust, what is broad or mis-targeted
	Rejected                 // the claim is not accepted: the statement fails because of it (or a Deny applies, or the policy is invalid)
	Undecided                // whether the claim matches cannot be decided before STS sees the request
)

// weight ranks the claims for Claims: a statement that fails on its provider is further
// from accepting the request than one that fails on all the other claims together.
func (c Claim) weight() int {
	switch c {
	case ClaimProvider:
		return 8
	case ClaimAction:
		return 4
	case ClaimSubject:
		return 2
	case ClaimAudience:
		return 1
	}
	return 0
}

// Claims is the part of the verdict that may be told to the requester: which of its own
// claims it rests on, without anything of the policy. In order of the Claim constants:
//
//   - NotTrusted: the claims the Allow statement closest to accepting the request rejects
//     (closest: the lightest set by weight, so a statement for this cluster's provider wins
//     over one for another cluster). When no statement accepts the provider, only
//     ClaimProvider: whatever else such statements test is about other principals. An
//     applying Deny, an invalid policy and a policy without Allow are reported as
//     ClaimProvider too, so that they look to the requester like a role that does not
//     trust its provider (or, to the webhook, like a role that does not exist).
//   - Undetermined: every claim whose match is undecided (NoClaim: a request value the
//     checker cannot know).
//   - Trusted: none.
func (v Verdict) Claims() []Claim {
	switch v.Result {
	case NotTrusted:
		type group struct {
			statement int
			claims    []Claim
			weight    int
		}
		var groups []group
		for _, f := range v.Findings {
			if f.Severity != Error || f.Outcome != Rejected {
				continue
			}
			c := f.Claim
			if c == NoClaim {
				c = ClaimProvider // cannot name the claim: say no more than "not trusted"
			}
			i := slices.IndexFunc(groups, func(g group) bool { return g.statement == f.Statement })
			if i < 0 {
				groups = append(groups, group{statement: f.Statement})
				i = len(groups) - 1
			}
			if !slices.Contains(groups[i].claims, c) {
				groups[i].claims = append(groups[i].claims, c)
				groups[i].weight += c.weight()
			}
		}
		if len(groups) == 0 {
			return []Claim{ClaimProvider}
		}
		best := slices.MinFunc(groups, func(a, b group) int { return a.weight - b.weight })
		if slices.Contains(best.claims, ClaimProvider) {
			return []Claim{ClaimProvider}
		}
		slices.Sort(best.claims)
		return best.claims
	case Undetermined:
		var out []Claim
		for _, f := range v.Findings {
			if f.Outcome == Undecided && !slices.Contains(out, f.Claim) {
				out = append(out, f.Claim)
			}
		}
		slices.Sort(out)
		return out
	}
	return nil
}
