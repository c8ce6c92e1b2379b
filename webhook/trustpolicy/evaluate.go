package trustpolicy

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// Action is the STS action a pod's web identity token is used for.
const Action = "sts:AssumeRoleWithWebIdentity"

const actionLower = "sts:assumerolewithwebidentity"

// SubjectPrefix starts the sub claim of every service-account token.
const SubjectPrefix = "system:serviceaccount:"

// Request describes the sts:AssumeRoleWithWebIdentity call a pod would make.
type Request struct {
	RoleARN        string // the role to assume; its partition and account locate the OIDC provider
	IssuerURL      string // the cluster's service-account issuer, "https://host/path"
	Namespace      string
	ServiceAccount string
	Audience       string // the token's audience; "" means unknown (aud conditions become unknown)
}

// Subject is the token's sub claim for the request's service account.
func (r Request) Subject() string {
	return SubjectPrefix + r.Namespace + ":" + r.ServiceAccount
}

// Result is the outcome of Evaluate. The zero value is Undetermined.
type Result uint8

// Results.
const (
	Undetermined Result = iota // the checker cannot tell: something the answer depends on is unknown
	Trusted                    // the trust policy lets the service account assume the role
	NotTrusted                 // it does not: STS would refuse the call
)

func (r Result) String() string {
	switch r {
	case Trusted:
		return "Trusted"
	case NotTrusted:
		return "NotTrusted"
	}
	return "Undetermined"
}

// Severity ranks a finding.
type Severity uint8

// Severities.
const (
	Info    Severity = iota // what grants trust
	Warning                 // broad, unknown or mis-targeted, but not on its own a refusal
	Error                   // why the role is not trusted, or why the request cannot be checked
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "info"
}

// Finding is one observation about the policy and the request. Claim and Outcome say what
// it means for the request alone; Message is the full text for whoever may read the
// policy (it quotes its principals and condition values).
type Finding struct {
	Severity  Severity
	Statement int     // index of the statement it is about, -1 for the policy or the request
	Claim     Claim   // the request's claim it is about
	Outcome   Outcome // what it says about that claim
	Message   string  // starts with "statement N (Sid ...): " when Statement >= 0
}

func (f Finding) String() string { return f.Severity.String() + ": " + f.Message }

// Verdict is Evaluate's answer.
type Verdict struct {
	Result   Result
	Findings []Finding // in statement order
}

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

// requestContext is a validated Request, in the forms matching needs.
type requestContext struct {
	req      Request
	role     irsa.RoleARN
	issuer   string // host/path: the provider's URL without scheme or trailing slash
	keyScope string // issuer lower-cased, to compare with lower-cased condition keys
	sub      string
}

// provider is the ARN of the IAM OIDC provider STS uses for this request:
// arn:<role partition>:iam::<role account>:oidc-provider/<issuer>.
func (c *requestContext) provider() string {
	return "arn:" + c.role.Partition + ":iam::" + c.role.AccountID + ":oidc-provider/" + c.issuer
}

func newRequestContext(r Request) (requestContext, []string) {
	c := requestContext{req: r}
	var problems []string
	role, err := irsa.ParseRoleARN(r.RoleARN)
	if err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	c.role = role
	issuer, err := issuerPath(r.IssuerURL)
	if err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	c.issuer = issuer
	if err := checkName("namespace", r.Namespace); err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	if err := checkName("service account name", r.ServiceAccount); err != nil {
		problems = append(problems, "cannot check trust: "+err.Error())
	}
	if len(problems) > 0 {
		return c, problems
	}
	c.sub = r.Subject()
	c.keyScope = strings.ToLower(issuer)
	return c, nil
}

// issuerPath turns an issuer URL into the IAM OIDC provider's URL: host and path without
// the https:// scheme or a trailing slash. A URL without a scheme is taken as already in
// that form.
func issuerPath(u string) (string, error) {
	if u == "" {
		return "", fmt.Errorf("issuer URL is empty")
	}
	rest := u
	if len(u) >= len("https://") && strings.EqualFold(u[:len("https://")], "https://") {
		rest = u[len("https://"):]
	} else if strings.Contains(u, "://") {
		return "", fmt.Errorf("issuer URL %q must use https", u)
	}
	rest = strings.TrimRight(rest, "/")
	if rest == "" || rest[0] == '/' {
		return "", fmt.Errorf("issuer URL %q has no host", u)
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '"' || c == '\\' {
			return "", fmt.Errorf("issuer URL %q contains %q; an OIDC issuer has no spaces, query or fragment", u, c)
		}
	}
	return rest, nil
}

func checkName(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return fmt.Errorf("%s %q contains %q", what, v, c)
		}
	}
	return nil
}

// keyKind classifies a condition key relative to the request.
type keyKind uint8

const (
	keyOther         keyKind = iota // a global or service key (aws:SourceIp, sts:RoleSessionName, ...)
	keySub                          // <issuer>:sub
	keyAud                          // <issuer>:aud
	keyOwnClaim                     // <issuer>:<another claim>
	keyOtherProvider                // <another provider>:<claim>
	keyWithScheme                   // https://<issuer>:<claim>, which IAM's keys never have
)

// lookup returns what the checker knows about a (lower-cased) condition key. Only this
// issuer's sub, and aud when the request names an audience, are known; every other key may
// or may not be in STS's request context, so its state is unknown.
func (c *requestContext) lookup(key string) (keyKind, keyState, string) {
	i := strings.LastIndexByte(key, ':')
	if i <= 0 {
		return keyOther, keyUnknown, ""
	}
	prefix, claim := key[:i], key[i+1:]
	if prefix == c.keyScope {
		switch claim {
		case "sub":
			return keySub, keyPresent, c.sub
		case "aud":
			if c.req.Audience == "" {
				return keyAud, keyUnknown, ""
			}
			return keyAud, keyPresent, c.req.Audience
		}
		return keyOwnClaim, keyUnknown, ""
	}
	if len(prefix) > len("https://") && prefix[:len("https://")] == "https://" && prefix[len("https://"):] == c.keyScope {
		return keyWithScheme, keyUnknown, ""
	}
	if strings.ContainsAny(prefix, "./") {
		return keyOtherProvider, keyUnknown, ""
	}
	return keyOther, keyUnknown, ""
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
	if s.Principal.All || contains(s.Principal.AWS, "*") {
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

func contains(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

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
	if (s.Principal.All || contains(s.Principal.AWS, "*")) && !s.NotPrincipal {
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
