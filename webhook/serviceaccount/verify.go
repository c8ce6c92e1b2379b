// Package serviceaccount checks, when a ServiceAccount names an IAM role, that the role's
// trust policy lets this cluster's token for that ServiceAccount assume it. Verify is the
// check itself (used by the webhook and the trust commands); Handler is its admission
// adapter (modes off / warn / enforce, deadline, Event, metric).
package serviceaccount

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// TrustSource returns a role's trust policy document (JSON or URL-encoded).
// *awsiam.Source and *awsiam.DirSource implement it.
type TrustSource interface {
	TrustPolicy(ctx context.Context, roleARN string) (string, error)
}

// ParsedTrustSource is a TrustSource that keeps each document parsed beside it
// (*awsiam.Source): Verify then evaluates the cached parse instead of parsing the
// document on every check.
type ParsedTrustSource interface {
	TrustSource
	ParsedTrustPolicy(ctx context.Context, roleARN string) (awsiam.Policy, error)
}

// trustPolicy fetches the role's policy and its parse from src, parsing it here when src
// does not keep it parsed.
func trustPolicy(ctx context.Context, src TrustSource, roleARN string) (awsiam.Policy, error) {
	if ps, ok := src.(ParsedTrustSource); ok {
		return ps.ParsedTrustPolicy(ctx, roleARN)
	}
	doc, err := src.TrustPolicy(ctx, roleARN)
	if err != nil {
		return awsiam.Policy{}, err
	}
	p := awsiam.Policy{Document: doc}
	p.Parsed, p.ParseErr = trustpolicy.Parse(doc)
	return p, nil
}

// Verdict is the outcome of one check, in two tellings: Reasons for whoever may read the
// role's trust policy (the admin's `irsa-webhook trust check`, the webhook's debug log),
// and Claims and Cause for the requester (TenantSummary), which say nothing of the policy.
type Verdict struct {
	Result   trustpolicy.Result
	Reasons  []string // why NotTrusted or Undetermined (errors first), or what is broad about a trusted policy; quotes the policy
	Claims   []trustpolicy.Claim
	Cause    string   // a reason the requester may read that is not about the policy: its role ARN is invalid, IAM's error class, ...
	Notes    []string // remarks on the requester's own annotations (ignored or adjusted), which it reads too
	Policy   string   // the trust policy checked, if it could be fetched
	RoleARN  string
	Subject  string // system:serviceaccount:NS:NAME
	Audience string
	Err      error  // the trust source's error when the policy could not be fetched (an *awsiam.Error)
	Provider string // the IAM OIDC provider STS would see: arn:PARTITION:iam::ROLE-ACCOUNT:oidc-provider/ISSUER
}

// Verify fetches the role's trust policy and evaluates it for the request. Every failure
// becomes a verdict with a reason: a role IAM says does not exist is NotTrusted; anything
// the checker cannot find out (IAM throttled or down, access denied, a role in another
// account, a policy it cannot parse) is Undetermined, never NotTrusted.
func Verify(ctx context.Context, src TrustSource, r trustpolicy.Request) Verdict {
	v := Verdict{RoleARN: r.RoleARN, Subject: trustpolicy.SubjectPrefix + r.Namespace + ":" + r.ServiceAccount, Audience: r.Audience, Provider: r.Provider()}
	if _, err := irsa.ParseRoleARN(r.RoleARN); err != nil {
		v.Result, v.Reasons, v.Cause = trustpolicy.NotTrusted, []string{err.Error()}, err.Error() // about its own annotation
		return v
	}
	if r.IssuerURL == "" {
		v.Result, v.Reasons = trustpolicy.Undetermined, []string{"the cluster's OIDC issuer is not known yet (not discovered from the API server so far; the webhook keeps trying, or set --oidc-issuer-url)"}
		v.Cause = "the cluster's OIDC issuer is not known yet"
		return v
	}
	policy, err := trustPolicy(ctx, src, r.RoleARN)
	switch {
	case errors.Is(err, awsiam.ErrNotFound):
		// Whether a role exists is not the requester's to know (any tenant could otherwise
		// list the account's role names). A missing role trusts no provider, so it is told
		// as exactly that: the same words as an existing role none of whose statements
		// accepts this cluster's provider, which is what most roles of the account are.
		v.Result, v.Reasons = trustpolicy.NotTrusted, []string{"role " + r.RoleARN + " does not exist"}
		v.Claims = []trustpolicy.Claim{trustpolicy.ClaimProvider}
		return v
	case err != nil:
		v.Result, v.Reasons, v.Err, v.Cause = trustpolicy.Undetermined, []string{err.Error()}, err, sourceFailure(err)
		return v
	}
	v.Policy = policy.Document
	if policy.ParseErr != nil {
		v.Result, v.Reasons = trustpolicy.Undetermined, []string{"cannot parse the trust policy of " + r.RoleARN + ": " + policy.ParseErr.Error()}
		v.Cause = "the role's trust policy cannot be read by the checker"
		return v
	}
	tv := trustpolicy.Evaluate(policy.Parsed, r)
	v.Result, v.Claims = tv.Result, tv.Claims()
	for _, sev := range []trustpolicy.Severity{trustpolicy.Error, trustpolicy.Warning} {
		for _, f := range tv.Findings {
			if f.Severity == sev {
				v.Reasons = append(v.Reasons, f.Message)
			}
		}
	}
	return v
}

// sourceFailure is what the requester is told when the trust policy could not be fetched:
// the error's class ("IAM throttled"), never its detail (request IDs, file paths, the
// webhook's permissions), which goes to the log.
func sourceFailure(err error) string {
	var e *awsiam.Error
	if errors.As(err, &e) && e.Class != nil {
		return e.Class.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "no answer in time"
	}
	return "the trust policy could not be fetched"
}

// Summary is one line with everything: what was checked, the answer and every reason,
// quoting the policy. It is for whoever may read the policy. It says why in the words the
// requester reads (TenantSummary's, without the notes on its annotations), then the
// reasons that quote the policy, so that the admin's tools (doctor, trust check,
// --trust-check-detailed-warnings) and the tenant's warning name the failed claim alike.
func (v Verdict) Summary() string {
	if v.Result == trustpolicy.Trusted {
		if len(v.Reasons) == 0 {
			return v.head()
		}
		return v.head() + ": " + strings.Join(v.Reasons, "; ")
	}
	s := v.tenantSummary()
	var more []string
	for _, r := range v.Reasons {
		if r != v.Cause {
			more = append(more, r)
		}
	}
	if len(more) == 0 {
		return s
	}
	return s + " (" + strings.Join(more, "; ") + ")"
}

func (v Verdict) head() string {
	switch v.Result {
	case trustpolicy.Trusted:
		return fmt.Sprintf("role %s trusts %s (audience %q)", v.RoleARN, v.Subject, v.Audience)
	case trustpolicy.NotTrusted:
		return fmt.Sprintf("role %s does not trust %s (audience %q)", v.RoleARN, v.Subject, v.Audience)
	}
	return fmt.Sprintf("trust of role %s for %s not verified", v.RoleARN, v.Subject)
}

// TenantSummary is the line for the requester (admission warning, denial, Event): the
// verdict and which of its own claims it rests on, with the values it sent (its subject,
// audience and this cluster's provider), built from Claims and Cause only, so it cannot
// carry the policy's principals or condition values. A missing role reads like a role
// that does not accept this cluster's provider (see Verify).
func (v Verdict) TenantSummary() string {
	s := v.tenantSummary()
	if len(v.Notes) > 0 {
		s += "; " + strings.Join(v.Notes, "; ")
	}
	return s
}

func (v Verdict) tenantSummary() string {
	head := v.head()
	switch {
	case v.Result == trustpolicy.Trusted:
		return head
	case v.Cause != "":
		return head + ": " + v.Cause
	case v.Result == trustpolicy.NotTrusted:
		if len(v.Claims) == 0 || len(v.Claims) == 1 && v.Claims[0] == trustpolicy.ClaimProvider {
			return head + ": the role does not exist or its trust policy does not accept tokens from " + v.Describe(trustpolicy.ClaimProvider)
		}
		return head + ": its trust policy does not accept " + v.describeAll()
	}
	if len(v.Claims) == 0 {
		return head + ": the checker cannot decide whether the trust policy accepts this token"
	}
	return head + ": the checker cannot decide whether the trust policy accepts " + v.describeAll()
}

func (v Verdict) describeAll() string {
	parts := make([]string, 0, len(v.Claims))
	for _, c := range v.Claims {
		parts = append(parts, v.Describe(c))
	}
	return strings.Join(parts, " and ")
}

// Describe names one claim of the request with the value the requester sent (its
// Subject, Audience or Provider), in the words of every verdict and of doctor's checks:
// sub "system:serviceaccount:NS:NAME", aud "AUDIENCE", the OIDC provider "ARN".
func (v Verdict) Describe(c trustpolicy.Claim) string {
	switch c {
	case trustpolicy.ClaimProvider:
		if v.Provider == "" {
			return "this cluster's OIDC provider"
		}
		return fmt.Sprintf("the OIDC provider %q", v.Provider)
	case trustpolicy.ClaimAction:
		return "the action " + trustpolicy.Action
	case trustpolicy.ClaimSubject:
		return fmt.Sprintf("sub %q", v.Subject)
	case trustpolicy.ClaimAudience:
		return fmt.Sprintf("aud %q", v.Audience)
	}
	return "other values of the request (conditions the checker cannot evaluate before STS sees it)"
}
