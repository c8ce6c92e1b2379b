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

// Verdict is the outcome of one check, with the reasons in words.
type Verdict struct {
	Result   trustpolicy.Result
	Reasons  []string // why NotTrusted or Undetermined (errors first), or what is broad about a trusted policy
	Policy   string   // the trust policy checked, if it could be fetched
	RoleARN  string
	Subject  string // system:serviceaccount:NS:NAME
	Audience string
	Err      error // the trust source's error when the policy could not be fetched (an *awsiam.Error)
}

// Verify fetches the role's trust policy and evaluates it for the request. Every failure
// becomes a verdict with a reason: a role IAM says does not exist is NotTrusted; anything
// the checker cannot find out (IAM throttled or down, access denied, a role in another
// account, a policy it cannot parse) is Undetermined, never NotTrusted.
func Verify(ctx context.Context, src TrustSource, r trustpolicy.Request) Verdict {
	v := Verdict{RoleARN: r.RoleARN, Subject: trustpolicy.SubjectPrefix + r.Namespace + ":" + r.ServiceAccount, Audience: r.Audience}
	if _, err := irsa.ParseRoleARN(r.RoleARN); err != nil {
		v.Result, v.Reasons = trustpolicy.NotTrusted, []string{err.Error()}
		return v
	}
	if r.IssuerURL == "" {
		v.Result, v.Reasons = trustpolicy.Undetermined, []string{"the cluster's OIDC issuer is not known yet (not discovered from the API server so far; the webhook keeps trying, or set --oidc-issuer-url)"}
		return v
	}
	doc, err := src.TrustPolicy(ctx, r.RoleARN)
	switch {
	case errors.Is(err, awsiam.ErrNotFound):
		v.Result, v.Reasons = trustpolicy.NotTrusted, []string{"role " + r.RoleARN + " does not exist"}
		return v
	case err != nil:
		v.Result, v.Reasons, v.Err = trustpolicy.Undetermined, []string{err.Error()}, err
		return v
	}
	v.Policy = doc
	p, err := trustpolicy.Parse(doc)
	if err != nil {
		v.Result, v.Reasons = trustpolicy.Undetermined, []string{"cannot parse the trust policy of " + r.RoleARN + ": " + err.Error()}
		return v
	}
	tv := trustpolicy.Evaluate(p, r)
	v.Result = tv.Result
	for _, sev := range []trustpolicy.Severity{trustpolicy.Error, trustpolicy.Warning} {
		for _, f := range tv.Findings {
			if f.Severity == sev {
				v.Reasons = append(v.Reasons, f.Message)
			}
		}
	}
	return v
}

// Summary is one line for a user: what was checked and the answer.
func (v Verdict) Summary() string {
	var head string
	switch v.Result {
	case trustpolicy.Trusted:
		head = fmt.Sprintf("role %s trusts %s (audience %q)", v.RoleARN, v.Subject, v.Audience)
	case trustpolicy.NotTrusted:
		head = fmt.Sprintf("role %s does not trust %s (audience %q)", v.RoleARN, v.Subject, v.Audience)
	default:
		head = fmt.Sprintf("trust of role %s for %s not verified", v.RoleARN, v.Subject)
	}
	if len(v.Reasons) == 0 {
		return head
	}
	return head + ": " + strings.Join(v.Reasons, "; ")
}
