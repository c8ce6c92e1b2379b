package trustpolicy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

func (c *requestContext) findings(p *Policy, result Result, deny tri, outcomes []stmtOutcome, reasons []reason) []Finding {
	var out []Finding
	add := func(sev Severity, i int, claim Claim, outcome Outcome, msg string) {
		out = append(out, Finding{Severity: sev, Statement: i, Claim: claim, Outcome: outcome, Message: statementLabel(p, i) + msg})
	}
	allowCount := 0
	for i := range p.Statements {
		s := &p.Statements[i]
		o := outcomes[i]
		rs := reasons[o.from:o.to]
		if s.Effect == Allow {
			allowCount++
		}
		crossAccountShown := false
		switch {
		case result == NotTrusted && deny == yes:
			if s.Effect == Deny && o.t == yes {
				// Reported against the provider: the requester learns no more than from a
				// role that does not trust its provider (see Verdict.Claims).
				add(Error, i, ClaimProvider, Rejected, "explicit Deny applies: its principal, action and conditions all match this service account")
			}
		case result == NotTrusted:
			if s.Effect == Allow {
				for _, r := range rs {
					if r.t == no {
						add(Error, i, r.claim(), Rejected, c.message(s, r))
						crossAccountShown = crossAccountShown || r.kind == reasonCrossAccount
					}
				}
			}
		case result == Undetermined:
			if o.t == unknown {
				for _, r := range rs {
					if r.t == unknown {
						add(Warning, i, r.claim(), Undecided, s.Effect.String()+" statement cannot be decided: "+c.message(s, r))
					}
				}
			} else if o.t == no && s.Effect == Allow {
				for _, r := range rs {
					if r.t == no && r.kind != reasonCrossAccount {
						add(Info, i, r.claim(), Rejected, c.message(s, r))
					}
				}
			}
		case result == Trusted:
			if s.Effect == Allow && o.t == yes {
				add(Info, i, NoClaim, Note, "allows "+c.sub+" to assume the role")
				for _, w := range c.broadness(s) {
					add(Warning, i, NoClaim, Note, w)
				}
			}
		}
		if !crossAccountShown {
			for _, r := range rs {
				if r.kind == reasonCrossAccount {
					add(Warning, i, ClaimProvider, Note, c.message(s, r))
				}
			}
		}
	}
	if result == NotTrusted && deny != yes && allowCount == 0 {
		out = append(out, Finding{Severity: Error, Statement: -1, Claim: ClaimProvider, Outcome: Rejected, Message: "no statement has Effect Allow, so nothing grants " + Action})
	}
	return out
}

func statementLabel(p *Policy, i int) string {
	if sid := p.Statements[i].Sid; sid != "" {
		return "statement " + strconv.Itoa(i) + " (Sid " + strconv.Quote(sid) + "): "
	}
	return "statement " + strconv.Itoa(i) + ": "
}

// claim is the request's claim a reason is about.
func (r reason) claim() Claim {
	switch r.kind {
	case reasonAction:
		return ClaimAction
	case reasonCondition:
		switch r.key {
		case keySub:
			return ClaimSubject
		case keyAud:
			return ClaimAudience
		}
		return NoClaim
	}
	return ClaimProvider
}

// message formats a reason.
func (c *requestContext) message(s *Statement, r reason) string {
	switch r.kind {
	case reasonPrincipal:
		if s.NotPrincipal {
			return fmt.Sprintf("NotPrincipal %s excludes this cluster's provider %q", describePrincipal(s.Principal), c.provider())
		}
		return fmt.Sprintf("principal %s is not this cluster's provider %q", describePrincipal(s.Principal), c.provider())
	case reasonCrossAccount:
		return fmt.Sprintf("principal %q is this cluster's issuer registered as an OIDC provider in account %s, but the role is in account %s: "+
			"STS only honours an OIDC provider registered in the role's own account, so create the IAM OIDC provider in account %s and trust %q",
			r.fed.raw, r.fed.account, c.role.AccountID, c.role.AccountID, c.provider())
	case reasonCaseOnly:
		return fmt.Sprintf("principal %q differs from this cluster's provider %q only in letter case or a trailing slash", r.fed.raw, c.provider())
	case reasonFederatedAll:
		return `principal {"Federated": "*"} is not a form the checker can match against this cluster's provider`
	case reasonAction:
		if s.NotAction {
			return fmt.Sprintf("NotAction %s excludes %s", describeList(s.Actions), Action)
		}
		return fmt.Sprintf("action %s does not match %s", describeList(s.Actions), Action)
	}
	return c.conditionMessage(r)
}

func (c *requestContext) conditionMessage(r reason) string {
	cond := r.cond
	key := fmt.Sprintf("%q", cond.Key)
	switch r.key {
	case keySub:
		key = "sub"
	case keyAud:
		key = "aud"
	}
	vals := describeList(cond.Values)
	if r.t == no {
		switch {
		case r.state == keyAbsent:
			return fmt.Sprintf("%s is absent from the request, so %s %s fails", key, cond.Operator, vals)
		case cond.op.kind == opNull:
			return fmt.Sprintf("%s %s %s fails: the key is present", key, cond.Operator, vals)
		case cond.op.kind.typed():
			return fmt.Sprintf("%s %s %s cannot match %q: it is not %s", key, cond.Operator, vals, r.value, cond.op.kind.noun())
		case cond.op.negated:
			return fmt.Sprintf("%s %s %s excludes %q", key, cond.Operator, vals, r.value)
		}
		return fmt.Sprintf("%s %s %s does not match %q", key, cond.Operator, vals, r.value)
	}
	switch {
	case cond.op.kind == opUnsupported || cond.op.kind.typed():
		return fmt.Sprintf("%s %s %s: the checker does not evaluate the %s operator", key, cond.Operator, vals, cond.Operator)
	case r.state == keyUnknown:
		switch r.key {
		case keyAud:
			return fmt.Sprintf("aud %s %s: the request names no audience", cond.Operator, vals)
		case keyOwnClaim:
			return fmt.Sprintf("%s %s %s: the checker knows only the sub and aud claims of this cluster's tokens", key, cond.Operator, vals)
		case keyWithScheme:
			return fmt.Sprintf("%s %s %s: IAM's condition keys name the provider without https:// (%q), so STS most likely finds this key absent; the checker cannot be sure", key, cond.Operator, vals, c.issuer+":...")
		case keyOtherProvider:
			return fmt.Sprintf("%s %s %s: the key belongs to another identity provider than this cluster's %q (a condition copied from another cluster?); the checker cannot know its value", key, cond.Operator, vals, c.issuer)
		}
		return fmt.Sprintf("%s %s %s: the checker cannot know this key's value before the request reaches STS", key, cond.Operator, vals)
	case cond.op.kind == opNull:
		return fmt.Sprintf("%s %s %s: a Null value must be \"true\" or \"false\"", key, cond.Operator, vals)
	}
	return fmt.Sprintf("%s %s %s: a value uses a policy variable the checker does not resolve", key, cond.Operator, vals)
}

// broadness lists what makes an allowing statement broader than one service account of
// one cluster with the expected audience.
func (c *requestContext) broadness(s *Statement) []string {
	var out []string
	if (s.Principal.All || slices.Contains(s.Principal.AWS, "*")) && !s.NotPrincipal {
		out = append(out, `principal "*" trusts every identity; only the conditions restrict who can assume the role`)
	}
	var hasSub, hasAud bool
	for i := range s.Conditions {
		cond := &s.Conditions[i]
		kind, _, _ := c.lookup(cond.key)
		if !cond.op.positive() {
			continue
		}
		switch kind {
		case keySub:
			hasSub = true
			if cond.op.kind != opLike {
				continue
			}
			for j := range cond.vals {
				if w := wildcardScope(&cond.vals[j]); w != "" {
					out = append(out, fmt.Sprintf("sub %s %q matches %s", cond.Operator, cond.Values[j], w))
				}
			}
		case keyAud:
			hasAud = true
		}
	}
	if !hasSub {
		out = append(out, fmt.Sprintf("no condition restricts %s:sub, so every service account of every namespace in this cluster can assume the role", c.issuer))
	}
	if !hasAud {
		out = append(out, fmt.Sprintf("no condition restricts %s:aud to the token audience", c.issuer))
	}
	return out
}

// wildcardScope says which part of a service-account subject a StringLike pattern leaves
// open: "" when namespace and name are both fixed.
func wildcardScope(v *matchValue) string {
	if v.variable {
		return ""
	}
	need := SubjectPrefix
	const (
		inPrefix = iota
		inNamespace
		inName
	)
	stage := inPrefix
	var nsWild, nameWild bool
	for _, t := range v.glob {
		if t.kind != globLiteral {
			switch stage {
			case inPrefix:
				return "any subject (the wildcard is before the namespace)"
			case inNamespace:
				nsWild = true
			default:
				nameWild = true
			}
			continue
		}
		s := t.lit
		for s != "" {
			switch stage {
			case inPrefix:
				n := min(len(need), len(s))
				if s[:n] != need[:n] {
					return "" // not a service-account subject at all; it cannot match one either
				}
				need, s = need[n:], s[n:]
				if need == "" {
					stage = inNamespace
				}
			case inNamespace:
				j := strings.IndexByte(s, ':')
				if j < 0 {
					s = ""
					continue
				}
				s, stage = s[j+1:], inName
			default:
				s = ""
			}
		}
	}
	switch {
	case stage == inNamespace && nsWild:
		return "any namespace and any service account name"
	case nsWild && nameWild:
		return "any namespace and any service account name"
	case nsWild:
		return "any namespace"
	case nameWild:
		return "any service account name in the namespace"
	}
	return ""
}

func describeList(vs []string) string {
	if len(vs) == 1 {
		return fmt.Sprintf("%q", vs[0])
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", v)
	}
	b.WriteByte(']')
	return b.String()
}

func describePrincipal(p Principal) string {
	if p.All {
		return `"*"`
	}
	type entry struct {
		name string
		vals []string
	}
	entries := []entry{{"Federated", p.Federated}, {"AWS", p.AWS}, {"Service", p.Service}, {"CanonicalUser", p.CanonicalUser}}
	var parts []string
	total := 0
	for _, e := range entries {
		if len(e.vals) > 0 {
			parts = append(parts, fmt.Sprintf("%q: %s", e.name, describeList(e.vals)))
			total += len(e.vals)
		}
	}
	if total == 1 && len(p.Federated) == 1 {
		return fmt.Sprintf("%q", p.Federated[0])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
