package serviceaccount

import (
	"context"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// CheckServiceAccount checks the role a ServiceAccount names for the token its pods get.
// The role and the audience are read by irsa.ForServiceAccount, the function the pod path
// uses, so the check evaluates exactly what pods would be given: an audience annotation the
// pods ignore is ignored here too, and a role the pods would not get (invalid, or in an
// account that is not allowed) is NotTrusted without asking IAM. hasRole is false when the
// ServiceAccount names no role (nothing to check). The settings' warnings (annotations
// ignored or adjusted) are appended to the verdict's reasons.
func CheckServiceAccount(ctx context.Context, src TrustSource, issuerURL string, sa irsa.Object, d irsa.Defaults) (v Verdict, hasRole bool) {
	s, decision, warnings := irsa.ForServiceAccount(sa, d)
	switch decision {
	case irsa.NoRole:
		return Verdict{}, false
	case irsa.InvalidAnnotation:
		return Verdict{Result: trustpolicy.NotTrusted, RoleARN: s.RoleAnnotation, Subject: trustpolicy.SubjectPrefix + sa.Namespace + ":" + sa.Name,
			Audience: s.Audience, Reasons: warnings, Cause: strings.Join(warnings, "; ")}, true // about its own annotations
	case irsa.RoleNotComposed:
		// Not the requester's mistake: the webhook does not know its account yet.
		return Verdict{Result: trustpolicy.Undetermined, RoleARN: s.RoleAnnotation, Subject: trustpolicy.SubjectPrefix + sa.Namespace + ":" + sa.Name,
			Audience: s.Audience, Reasons: warnings, Cause: "the role is a role name, and the AWS account to complete it with is not known yet"}, true
	}
	v = Verify(ctx, src, trustpolicy.Request{RoleARN: s.RoleARN, IssuerURL: issuerURL, Namespace: sa.Namespace, ServiceAccount: sa.Name, Audience: s.Audience})
	v.Reasons = append(v.Reasons, warnings...)
	v.Notes = warnings // about its own annotations: the requester sees them too
	return v, true
}
