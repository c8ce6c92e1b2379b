package trustpolicy

import (
	"slices"
	"strings"
)

// Evaluate decides whether the trust policy lets r's service account assume r's role with
// a token from r's issuer, with IAM's evaluation rules and the three-valued model described
// in the package documentation.
//
// Evaluate does not return an error: a nil policy or an invalid request (bad role ARN,
// issuer, namespace or service-account name) yields Undetermined with an Error finding per
// problem. It never modifies p and is safe for concurrent use.
func Evaluate(p *Policy, r Request) Verdict {
	c, problems := newRequestContext(r)
	if p == nil {
		problems = append(problems, "no trust policy to evaluate")
	}
	if len(problems) > 0 {
		v := Verdict{Result: Undetermined}
		for _, m := range problems {
			v.Findings = append(v.Findings, Finding{Severity: Error, Statement: -1, Outcome: Undecided, Message: m})
		}
		return v
	}
	// IAM refuses to save an invalid policy, so no role can have it: whatever its other
	// statements say, it grants nothing.
	var invalid Verdict
	for i := range p.Statements {
		if s := &p.Statements[i]; s.invalid != "" {
			invalid.Findings = append(invalid.Findings, Finding{Severity: Error, Statement: i, Claim: ClaimProvider, Outcome: Rejected, Message: statementLabel(p, i) + s.invalid})
		}
	}
	if len(invalid.Findings) > 0 {
		invalid.Result = NotTrusted
		return invalid
	}

	var buf [8]stmtOutcome
	outcomes := buf[:0]
	var reasons []reason
	deny, allow := no, no
	for i := range p.Statements {
		s := &p.Statements[i]
		from := len(reasons)
		var t tri
		t, reasons = c.evalStatement(s, reasons)
		outcomes = append(outcomes, stmtOutcome{t: t, from: from, to: len(reasons)})
		if s.Effect == Deny {
			deny = or(deny, t)
		} else {
			allow = or(allow, t)
		}
	}

	v := Verdict{Result: combine(deny, allow)}
	v.Findings = c.findings(p, v.Result, deny, outcomes, reasons)
	return v
}

// combine applies IAM's decision: explicit deny, else allow, else implicit deny.
func combine(deny, allow tri) Result {
	switch {
	case deny == yes:
		return NotTrusted
	case allow == no:
		return NotTrusted // implicit deny; an unknown Deny cannot change that
	case deny == no && allow == yes:
		return Trusted
	}
	return Undetermined
}

// stmtOutcome is one statement's value and its reasons' range in the shared slice.
type stmtOutcome struct {
	t        tri
	from, to int
}

// reasonKind says which part of a statement a reason is about.
type reasonKind uint8

const (
	reasonPrincipal    reasonKind = iota // the principal does not list (or NotPrincipal lists) this provider
	reasonCrossAccount                   // a provider of this issuer, registered in another account
	reasonCaseOnly                       // a provider ARN equal to this one except for letter case
	reasonFederatedAll                   // "Federated": "*"
	reasonAction                         // the action is not (or NotAction is) this one
	reasonCondition                      // a condition entry
)

// reason records why a part of a statement is false or unknown. Messages are formatted
// only when a finding needs them, so Evaluate stays cheap on the admission path.
type reason struct {
	kind  reasonKind
	t     tri
	cond  *Condition
	fed   *federatedARN
	key   keyKind
	state keyState
	value string
}

func (c *requestContext) evalStatement(s *Statement, reasons []reason) (tri, []reason) {
	principal, reasons := c.evalPrincipal(s, reasons)

	action := no
	for _, g := range s.actionGlobs {
		if globMatch(g, actionLower) {
			action = yes
			break
		}
	}
	if s.NotAction {
		action = not(action)
	}
	if action == no {
		reasons = append(reasons, reason{kind: reasonAction, t: no})
	}

	t := and(principal, action)
	for i := range s.Conditions {
		cond := &s.Conditions[i]
		kind, state, value := c.lookup(cond.key)
		ct := evalCondition(cond, state, value)
		if ct != yes {
			reasons = append(reasons, reason{kind: reasonCondition, t: ct, cond: cond, key: kind, state: state, value: value})
		}
		t = and(t, ct)
	}
	return t, reasons
}

// evalPrincipal decides whether the statement's Principal (or NotPrincipal) covers this
// cluster's OIDC provider, and records why not or why unknown.
func (c *requestContext) evalPrincipal(s *Statement, reasons []reason) (tri, []reason) {
	listed := no
	if s.Principal.All || slices.Contains(s.Principal.AWS, "*") {
		listed = yes
	}
	crossAccount := false
	for i := range s.federated {
		f := &s.federated[i]
		switch {
		case f.oidc && f.url == c.issuer && f.partition == c.role.Partition && f.account == c.role.AccountID:
			listed = yes
		case f.raw == "*":
			listed = or(listed, unknown)
		case f.oidc && c.sameIssuerLoosely(f.url) && f.partition == c.role.Partition:
			if f.account == c.role.AccountID {
				listed = or(listed, unknown)
			} else {
				crossAccount = true
			}
		}
	}
	principal := listed
	if s.NotPrincipal {
		principal = not(listed)
	}
	if principal == yes && !crossAccount {
		return yes, reasons
	}
	for i := range s.federated {
		f := &s.federated[i]
		switch {
		case f.oidc && f.url == c.issuer && f.partition == c.role.Partition && f.account == c.role.AccountID:
		case f.raw == "*":
			if principal == unknown {
				reasons = append(reasons, reason{kind: reasonFederatedAll, t: unknown, fed: f})
			}
		case f.oidc && c.sameIssuerLoosely(f.url) && f.partition == c.role.Partition:
			if f.account == c.role.AccountID {
				if principal == unknown {
					reasons = append(reasons, reason{kind: reasonCaseOnly, t: unknown, fed: f})
				}
				continue
			}
			// The statement fails because of it only when it is the Principal (not NotPrincipal)
			// and nothing else matched; otherwise it is a warning (t yes marks "not a failure").
			t := yes
			if principal == no && !s.NotPrincipal {
				t = no
			}
			reasons = append(reasons, reason{kind: reasonCrossAccount, t: t, fed: f})
		}
	}
	if principal == no && (s.NotPrincipal || !crossAccount) {
		reasons = append(reasons, reason{kind: reasonPrincipal, t: no})
	}
	return principal, reasons
}

// sameIssuerLoosely reports whether a provider URL is this issuer up to letter case and
// trailing slashes: the checker does not know whether STS would see such a provider as
// this one, so it neither matches nor mismatches.
func (c *requestContext) sameIssuerLoosely(url string) bool {
	return strings.EqualFold(strings.TrimRight(url, "/"), c.issuer)
}
