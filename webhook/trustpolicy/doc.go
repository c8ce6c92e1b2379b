// Package trustpolicy parses an IAM role trust policy and decides, with IAM's policy
// evaluation rules, whether a pod's projected service-account token from one cluster can
// call sts:AssumeRoleWithWebIdentity on the role.
//
// # The request
//
// A Request names the role, the cluster's OIDC issuer, the service account and the token
// audience. Evaluate models the STS call it stands for:
//
//   - action   sts:AssumeRoleWithWebIdentity
//   - principal {"Federated": "arn:<role partition>:iam::<role account>:oidc-provider/<issuer host/path>"}
//   - context  <issuer host/path>:sub = system:serviceaccount:<namespace>:<name>
//     <issuer host/path>:aud = <audience>
//
// Those two context keys are all the checker knows about the call. Every other key
// (aws:SourceIp, aws:PrincipalTag/..., sts:RoleSessionName, a claim of another provider,
// ...) has a value the checker cannot know before STS sees the request.
//
// # Three-valued evaluation
//
// Because some keys and some comparisons (Bool, IpAddress, DateGreaterThan, ArnLike, ...)
// cannot be evaluated here, every step yields true, false or unknown, combined with
// Kleene's logic: false AND x is false, true OR x is true, NOT unknown is unknown.
//
//   - a condition entry (one operator, one key, its values) is unknown when the operator is
//     not one this package implements, when the key's value is unknown, or when a value uses
//     a policy variable; a positive typed operator (Bool, Numeric*, Date*, IpAddress, Arn*)
//     is false on a known value that is not of its type (sub is never a number or an ARN),
//     and unknown otherwise; otherwise IAM's rules apply: several values under one key are ORed
//     (NORed for the negated Not operators), ForAllValues/ForAnyValue treat the key as a
//     one-element set, IfExists and Null look at whether the key is present, and a missing
//     key fails positive operators and satisfies negated ones;
//   - a statement applies when its principal, its action and all its condition entries are
//     true (AND of the three-valued parts);
//   - the policy combines statements as IAM does: an applicable Deny wins, otherwise an
//     applicable Allow is needed, otherwise the call is implicitly denied.
//
// With deny = OR of the Deny statements and allow = OR of the Allow statements:
//
//	deny true                         → NotTrusted (explicit deny)
//	allow false (deny false/unknown)  → NotTrusted (implicit deny)
//	deny false and allow true         → Trusted
//	anything else                     → Undetermined
//
// So an unknown can never produce NotTrusted where knowing it might have produced Trusted,
// and the reverse: a Deny whose conditions are unknown turns a would-be Trusted verdict into
// Undetermined, an Allow whose conditions are unknown turns a would-be NotTrusted verdict
// into Undetermined. A wrong NotTrusted would make the webhook refuse a working service
// account, so whenever this package is unsure, it says Undetermined.
//
// # Invalid policies
//
// A policy IAM refuses to save (an Effect not spelled exactly "Allow" or "Deny", an Allow
// statement with NotPrincipal) parses, but Evaluate answers NotTrusted naming the element,
// and Policy.Validate reports it: no role can have such a policy.
//
// # Findings
//
// A Verdict carries findings: Error findings say why the role is not trusted (for every
// Allow statement, each part that failed; or the Deny that applied), Warning findings say
// what is unknown, what is broader than needed (no sub condition, a wildcard namespace or
// name, no aud condition, a wildcard principal) or mis-targeted (an OIDC provider of this
// issuer registered in another account, which STS never honours), and Info findings name
// the statements that grant trust.
//
// Messages quote the policy, for whoever may read it (the admin, the log). Each finding
// also says, apart from its message, which claim of the request it is about (provider,
// action, sub, aud) and whether that claim was rejected or undecided; Verdict.Claims
// reduces those to what the requester itself may be told.
//
// Parse is done once per policy document (the result is meant to be cached); Evaluate is
// cheap and allocates little, because key names, operators and action patterns are
// normalised at Parse time.
package trustpolicy
