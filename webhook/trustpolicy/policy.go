package trustpolicy

import (
	"fmt"
	"net/url"
	"strings"
)

// MaxDocumentLen bounds the documents Parse accepts. IAM caps a role trust policy at 4096
// characters (2048 by default); URL-encoding can triple that. Anything far larger is not a
// trust policy, and refusing it keeps Parse's cost bounded.
const MaxDocumentLen = 64 << 10

// Policy versions IAM accepts. Policy variables (${...}) are only expanded under Version2012.
const (
	Version2012 = "2012-10-17"
	Version2008 = "2008-10-17"
)

// Policy is a parsed trust policy. Parse it once and reuse it: Evaluate does not modify it
// and may be called concurrently.
type Policy struct {
	Version    string // "" when the document has none
	ID         string
	Statements []Statement // in document order
}

// Effect is a statement's Effect.
type Effect uint8

// Statement effects.
const (
	Allow Effect = iota
	Deny
)

func (e Effect) String() string {
	if e == Deny {
		return "Deny"
	}
	return "Allow"
}

// Statement is one statement of a trust policy.
type Statement struct {
	Sid          string
	Effect       Effect
	Principal    Principal // the Principal element, or the NotPrincipal element when NotPrincipal is set
	NotPrincipal bool
	Actions      []string // the Action element, or the NotAction element when NotAction is set
	NotAction    bool
	Conditions   []Condition // one per (operator, key), in document order

	actionGlobs [][]globToken  // Actions lower-cased (action names are case-insensitive) and compiled
	federated   []federatedARN // Principal.Federated, pre-split
	invalid     string         // why IAM would refuse to save the statement, "" if it would not
}

// Principal is a Principal (or NotPrincipal) element.
type Principal struct {
	All           bool // "*"
	AWS           []string
	Federated     []string
	Service       []string
	CanonicalUser []string
}

// Condition is one entry of a Condition element: an operator, a key and its values.
type Condition struct {
	Operator string   // as written, e.g. "ForAnyValue:StringLike"
	Key      string   // as written
	Values   []string // numbers and booleans in their JSON text

	op   operator
	key  string       // lower-cased: condition keys are case-insensitive
	vals []matchValue // compiled Values
}

// federatedARN is a Federated principal split at Parse time. oidc is false for anything
// that is not arn:<partition>:iam::<account>:oidc-provider/<path>.
type federatedARN struct {
	raw                     string
	oidc                    bool
	partition, account, url string
}

// Parse parses a trust policy document: plain JSON, or URL-encoded JSON as IAM's GetRole
// returns it. A document whose first non-space character is '{' is JSON and is never
// URL-decoded (so a literal "%2F" in one of its strings stays "%2F"); anything else is
// URL-decoded exactly once, with '+' read as a space as the decoders AWS points to do.
//
// Parse accepts every shape IAM accepts for a trust policy and rejects what IAM rejects
// or what it could resolve in more than one way (duplicate names, empty lists); errors
// name the statement and element at fault. Element names, principal types and condition
// operators are matched case-insensitively.
func Parse(doc string) (*Policy, error) {
	if len(doc) > MaxDocumentLen {
		return nil, fmt.Errorf("policy document is %d bytes, more than the %d a trust policy can be", len(doc), MaxDocumentLen)
	}
	text := strings.TrimSpace(doc)
	if text == "" {
		return nil, fmt.Errorf("policy document is empty")
	}
	if text[0] != '{' {
		decoded, err := url.QueryUnescape(text)
		if err != nil {
			return nil, fmt.Errorf("policy document is neither JSON nor URL-encoded JSON: URL-decode: %w", err)
		}
		text = strings.TrimSpace(decoded)
		if !strings.HasPrefix(text, "{") {
			return nil, fmt.Errorf("policy document is neither JSON nor URL-encoded JSON: it does not start with '{' before or after URL-decoding")
		}
	}
	root, err := decodeJSON(text)
	if err != nil {
		return nil, fmt.Errorf("policy document is not valid JSON: %w", err)
	}
	return parsePolicy(root)
}

func parsePolicy(root jsonValue) (*Policy, error) {
	if root.kind != jsonObject {
		return nil, fmt.Errorf("policy document must be a JSON object, got %v", root.kind)
	}
	if name, dup := duplicateName(root.obj); dup {
		return nil, fmt.Errorf("policy document: element %q appears more than once", name)
	}
	p := &Policy{}
	var statements *jsonValue
	for i := range root.obj {
		m := &root.obj[i]
		switch strings.ToLower(m.name) {
		case "version":
			if m.value.kind != jsonString {
				return nil, fmt.Errorf("policy Version must be a string, got %v", m.value.kind)
			}
			if m.value.text != Version2012 && m.value.text != Version2008 {
				return nil, fmt.Errorf("policy Version %q is not %q or %q", m.value.text, Version2012, Version2008)
			}
			p.Version = m.value.text
		case "id":
			if m.value.kind != jsonString {
				return nil, fmt.Errorf("policy Id must be a string, got %v", m.value.kind)
			}
			p.ID = m.value.text
		case "statement":
			statements = &m.value
		default:
			return nil, fmt.Errorf("policy document has unknown top-level element %q (want Version, Id, Statement)", m.name)
		}
	}
	if statements == nil {
		return nil, fmt.Errorf("policy document has no Statement")
	}
	var list []jsonValue
	switch statements.kind {
	case jsonObject:
		list = []jsonValue{*statements}
	case jsonArray:
		list = statements.arr
	default:
		return nil, fmt.Errorf("policy Statement must be an object or a list of objects, got %v", statements.kind)
	}
	p.Statements = make([]Statement, len(list))
	for i := range list {
		if err := parseStatement(&p.Statements[i], list[i], p.Version); err != nil {
			return nil, fmt.Errorf("statement %d: %w", i, err)
		}
	}
	return p, nil
}

func parseStatement(s *Statement, v jsonValue, version string) error {
	if v.kind != jsonObject {
		return fmt.Errorf("must be an object, got %v", v.kind)
	}
	if name, dup := duplicateName(v.obj); dup {
		return fmt.Errorf("element %q appears more than once", name)
	}
	var haveEffect, havePrincipal, haveAction bool
	for i := range v.obj {
		m := &v.obj[i]
		var err error
		switch strings.ToLower(m.name) {
		case "sid":
			if m.value.kind != jsonString {
				return fmt.Errorf("element Sid must be a string, got %v", m.value.kind)
			}
			s.Sid = m.value.text
		case "effect":
			haveEffect = true
			switch {
			case m.value.kind != jsonString:
				err = fmt.Errorf("must be a string, got %v", m.value.kind)
			case strings.EqualFold(m.value.text, "Allow"):
				s.Effect = Allow
			case strings.EqualFold(m.value.text, "Deny"):
				s.Effect = Deny
			default:
				err = fmt.Errorf("is %q, want Allow or Deny", m.value.text)
			}
			// IAM's Effect value is case-sensitive ("allow" is refused) while element names
			// are not. Such a statement parses, so that findings can name it, but the policy
			// is invalid: Evaluate never trusts it and Validate reports it.
			if err == nil && m.value.text != "Allow" && m.value.text != "Deny" {
				s.invalid = fmt.Sprintf(`Effect %q is not valid: IAM accepts exactly "Allow" or "Deny" (case-sensitive) and refuses to save this policy`, m.value.text)
			}
		case "principal", "notprincipal":
			if havePrincipal {
				return fmt.Errorf("has both Principal and NotPrincipal")
			}
			havePrincipal = true
			s.NotPrincipal = strings.EqualFold(m.name, "NotPrincipal")
			err = parsePrincipal(s, m.value)
		case "action", "notaction":
			if haveAction {
				return fmt.Errorf("has both Action and NotAction")
			}
			haveAction = true
			s.NotAction = strings.EqualFold(m.name, "NotAction")
			s.Actions, err = stringList(m.value, false)
			s.actionGlobs = make([][]globToken, len(s.Actions))
			for i, a := range s.Actions {
				s.actionGlobs[i] = compileGlob(strings.ToLower(a))
			}
		case "condition":
			err = parseConditions(s, m.value, version)
		case "resource", "notresource":
			return fmt.Errorf("has a %s element, which a role trust policy cannot have", m.name)
		default:
			return fmt.Errorf("has unknown element %q", m.name)
		}
		if err != nil {
			return fmt.Errorf("%s %w", m.name, err)
		}
	}
	switch {
	case !haveEffect:
		return fmt.Errorf("has no Effect")
	case !havePrincipal:
		return fmt.Errorf("has no Principal or NotPrincipal (a trust policy statement needs one)")
	case !haveAction:
		return fmt.Errorf("has no Action or NotAction")
	}
	if s.invalid == "" && s.NotPrincipal && s.Effect == Allow {
		// "NotPrincipal must be used with "Effect":"Deny". Using it with "Effect":"Allow" is
		// not supported." (IAM JSON policy elements: NotPrincipal)
		s.invalid = `NotPrincipal with Effect "Allow" is not valid: IAM supports NotPrincipal only with Effect "Deny" and refuses to save this policy`
	}
	return nil
}

// Validate reports what makes IAM refuse to save a policy that Parse accepted: an Effect
// not spelled exactly "Allow" or "Deny", or NotPrincipal in an Allow statement. Evaluate
// answers NotTrusted for such a policy; a command reading a policy from a file calls
// Validate to report it as bad input.
func (p *Policy) Validate() error {
	var problems []string
	for i := range p.Statements {
		if s := &p.Statements[i]; s.invalid != "" {
			problems = append(problems, statementLabel(p, i)+s.invalid)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("policy is not valid: %s", strings.Join(problems, "; "))
}

func parsePrincipal(s *Statement, v jsonValue) error {
	switch v.kind {
	case jsonString:
		if v.text != "*" {
			return fmt.Errorf("must be \"*\" or an object, got the string %q", v.text)
		}
		s.Principal.All = true
		return nil
	case jsonObject:
	default:
		return fmt.Errorf("must be \"*\" or an object, got %v", v.kind)
	}
	if len(v.obj) == 0 {
		return fmt.Errorf("is an empty object")
	}
	if name, dup := duplicateName(v.obj); dup {
		return fmt.Errorf("type %q appears more than once", name)
	}
	for _, m := range v.obj {
		list, err := stringList(m.value, false)
		if err != nil {
			return fmt.Errorf("%s %w", m.name, err)
		}
		switch strings.ToLower(m.name) {
		case "aws":
			s.Principal.AWS = list
		case "federated":
			s.Principal.Federated = list
			s.federated = make([]federatedARN, len(list))
			for i, a := range list {
				s.federated[i] = splitFederated(a)
			}
		case "service":
			s.Principal.Service = list
		case "canonicaluser":
			s.Principal.CanonicalUser = list
		default:
			return fmt.Errorf("has unknown principal type %q (want AWS, Federated, Service or CanonicalUser)", m.name)
		}
	}
	return nil
}

func splitFederated(a string) federatedARN {
	f := federatedARN{raw: a}
	parts := strings.SplitN(a, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || parts[3] != "" {
		return f
	}
	path, ok := strings.CutPrefix(parts[5], "oidc-provider/")
	if !ok || path == "" {
		return f
	}
	f.oidc, f.partition, f.account, f.url = true, parts[1], parts[4], path
	return f
}

// stringList reads a string or a non-empty list of strings; with scalars set, numbers and
// booleans are accepted too, in their JSON text.
func stringList(v jsonValue, scalars bool) ([]string, error) {
	ok := func(k jsonKind) bool {
		return k == jsonString || scalars && (k == jsonNumber || k == jsonBool)
	}
	want := "a string or a list of strings"
	if scalars {
		want = "a string, number, boolean or a list of those"
	}
	if ok(v.kind) {
		return []string{v.text}, nil
	}
	if v.kind != jsonArray {
		return nil, fmt.Errorf("must be %s, got %v", want, v.kind)
	}
	if len(v.arr) == 0 {
		return nil, fmt.Errorf("is an empty list")
	}
	out := make([]string, len(v.arr))
	for i, e := range v.arr {
		if !ok(e.kind) {
			return nil, fmt.Errorf("must be %s, got %v at index %d", want, e.kind, i)
		}
		out[i] = e.text
	}
	return out, nil
}

func parseConditions(s *Statement, v jsonValue, version string) error {
	if v.kind != jsonObject {
		return fmt.Errorf("must be an object of operator blocks, got %v", v.kind)
	}
	if name, dup := duplicateName(v.obj); dup {
		return fmt.Errorf("operator %q appears more than once", name)
	}
	for _, block := range v.obj {
		if block.value.kind != jsonObject {
			return fmt.Errorf("%s must be an object of condition keys, got %v", block.name, block.value.kind)
		}
		if len(block.value.obj) == 0 {
			return fmt.Errorf("%s has no condition keys", block.name)
		}
		if name, dup := duplicateName(block.value.obj); dup {
			return fmt.Errorf("%s: key %q appears more than once", block.name, name)
		}
		op := parseOperator(block.name)
		for _, kv := range block.value.obj {
			if kv.name == "" {
				return fmt.Errorf("%s has an empty condition key", block.name)
			}
			vals, err := stringList(kv.value, true)
			if err != nil {
				return fmt.Errorf("%s %q %w", block.name, kv.name, err)
			}
			c := Condition{Operator: block.name, Key: kv.name, Values: vals, op: op, key: strings.ToLower(kv.name)}
			c.vals = make([]matchValue, len(vals))
			for i, val := range vals {
				c.vals[i] = compileValue(val, op, version == Version2012)
			}
			s.Conditions = append(s.Conditions, c)
		}
	}
	return nil
}
