package trustpolicy

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tri is a three-valued truth value.
type tri uint8

const (
	no tri = iota
	yes
	unknown
)

func and(a, b tri) tri {
	switch {
	case a == no || b == no:
		return no
	case a == unknown || b == unknown:
		return unknown
	}
	return yes
}

func or(a, b tri) tri {
	switch {
	case a == yes || b == yes:
		return yes
	case a == unknown || b == unknown:
		return unknown
	}
	return no
}

func not(a tri) tri {
	switch a {
	case yes:
		return no
	case no:
		return yes
	}
	return unknown
}

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// opKind is the base of a condition operator, once the set prefix, the negation and the
// IfExists suffix are taken off.
type opKind uint8

const (
	opUnsupported  opKind = iota // an operator this package does not evaluate: its outcome is unknown
	opEquals                     // StringEquals / StringNotEquals
	opEqualsIgnore               // StringEqualsIgnoreCase / StringNotEqualsIgnoreCase
	opLike                       // StringLike / StringNotLike
	opNull                       // Null

	// Typed operators compare the key as a boolean, number, date, IP address or ARN. The
	// checker does not implement those comparisons, but it knows when the key's value is not
	// of the type at all (a sub claim is never a number): see evalCondition.
	opBool    // Bool
	opNumeric // Numeric* (NumericNotEquals negated)
	opDate    // Date* (DateNotEquals negated)
	opIP      // IpAddress / NotIpAddress
	opArn     // ArnEquals, ArnLike / ArnNotEquals, ArnNotLike
)

// typed reports whether the operator compares values of a type other than string.
func (k opKind) typed() bool { return k >= opBool }

// noun names the type a typed operator compares, for messages.
func (k opKind) noun() string {
	switch k {
	case opBool:
		return "a boolean"
	case opNumeric:
		return "a number"
	case opDate:
		return "a date"
	case opIP:
		return "an IP address"
	case opArn:
		return "an ARN"
	}
	return "a string"
}

// couldBe reports whether value might be read as the typed operator's type. It only has to
// be right when it says false: the comparison then cannot match. It errs towards true (a
// value that merely starts like a date), which leaves the outcome unknown.
func (k opKind) couldBe(value string) bool {
	switch k {
	case opBool:
		return strings.EqualFold(value, "true") || strings.EqualFold(value, "false")
	case opNumeric:
		_, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return err == nil
	case opDate:
		// ISO 8601 dates and times, and epoch seconds, all start with a digit.
		v := strings.TrimSpace(value)
		return v != "" && (v[0] >= '0' && v[0] <= '9' || v[0] == '+' || v[0] == '-')
	case opIP:
		v := strings.TrimSpace(value)
		if _, err := netip.ParseAddr(v); err == nil {
			return true
		}
		_, err := netip.ParsePrefix(v)
		return err == nil
	case opArn:
		return len(value) >= len("arn:") && strings.EqualFold(value[:len("arn:")], "arn:")
	}
	return true
}

type setQualifier uint8

const (
	setNone setQualifier = iota
	setForAll
	setForAny
)

type operator struct {
	kind     opKind
	negated  bool
	set      setQualifier
	ifExists bool
}

// parseOperator recognises the string, typed (Bool, Numeric*, Date*, IpAddress, Arn*)
// and Null operators, with the ForAllValues: and ForAnyValue: prefixes and the IfExists
// suffix, case-insensitively (IAM validated the name when the policy was stored). Anything
// else (BinaryEquals, names IAM does not have) is opUnsupported.
func parseOperator(name string) operator {
	var op operator
	rest := name
	if p, r, ok := strings.Cut(rest, ":"); ok {
		switch {
		case strings.EqualFold(p, "ForAllValues"):
			op.set = setForAll
		case strings.EqualFold(p, "ForAnyValue"):
			op.set = setForAny
		default:
			return operator{}
		}
		rest = r
	}
	if n := len(rest) - len("IfExists"); n > 0 && strings.EqualFold(rest[n:], "IfExists") {
		op.ifExists = true
		rest = rest[:n]
	}
	switch strings.ToLower(rest) {
	case "stringequals":
		op.kind = opEquals
	case "stringnotequals":
		op.kind, op.negated = opEquals, true
	case "stringequalsignorecase":
		op.kind = opEqualsIgnore
	case "stringnotequalsignorecase":
		op.kind, op.negated = opEqualsIgnore, true
	case "stringlike":
		op.kind = opLike
	case "stringnotlike":
		op.kind, op.negated = opLike, true
	case "bool":
		op.kind = opBool
	case "numericequals", "numericlessthan", "numericlessthanequals", "numericgreaterthan", "numericgreaterthanequals":
		op.kind = opNumeric
	case "numericnotequals":
		op.kind, op.negated = opNumeric, true
	case "dateequals", "datelessthan", "datelessthanequals", "dategreaterthan", "dategreaterthanequals":
		op.kind = opDate
	case "datenotequals":
		op.kind, op.negated = opDate, true
	case "ipaddress":
		op.kind = opIP
	case "notipaddress":
		op.kind, op.negated = opIP, true
	case "arnequals", "arnlike":
		op.kind = opArn
	case "arnnotequals", "arnnotlike":
		op.kind, op.negated = opArn, true
	case "null":
		if op.set != setNone || op.ifExists {
			return operator{} // not an operator IAM has
		}
		op.kind = opNull
	default:
		return operator{}
	}
	return op
}

// positive reports whether the operator restricts the key to its values (as opposed to
// excluding them or only testing presence).
func (o operator) positive() bool {
	return !o.negated && (o.kind == opEquals || o.kind == opEqualsIgnore || o.kind == opLike)
}

// globToken is one piece of a StringLike pattern or an action pattern.
type globToken struct {
	kind uint8 // globLiteral, globStar, globOne
	lit  string
}

const (
	globLiteral uint8 = iota
	globStar
	globOne
)

// matchValue is a condition value compiled for its operator.
type matchValue struct {
	text     string      // the value to compare (policy-variable escapes resolved)
	glob     []globToken // opLike only
	variable bool        // uses a policy variable the checker cannot resolve: matching is unknown
}

// compileValue resolves the policy-variable escapes ${*}, ${?} and ${$} (only expanded in
// Version 2012-10-17 policies) and compiles StringLike patterns. Any other ${...} is a
// variable whose value the checker does not know.
func compileValue(v string, op operator, variables bool) matchValue {
	if !variables || !strings.Contains(v, "${") {
		if op.kind == opLike {
			return matchValue{text: v, glob: compileGlob(v)}
		}
		return matchValue{text: v}
	}
	var text strings.Builder
	var glob []globToken
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			glob = append(glob, globToken{kind: globLiteral, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '$' && i+1 < len(v) && v[i+1] == '{' {
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return matchValue{text: v, variable: true}
			}
			switch name := v[i+2 : i+end]; name {
			case "*", "?", "$":
				text.WriteString(name)
				lit.WriteString(name) // a literal, not a wildcard
				i += end
				continue
			default:
				return matchValue{text: v, variable: true}
			}
		}
		text.WriteByte(c)
		switch {
		case op.kind == opLike && c == '*':
			flush()
			glob = append(glob, globToken{kind: globStar})
		case op.kind == opLike && c == '?':
			flush()
			glob = append(glob, globToken{kind: globOne})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	mv := matchValue{text: text.String()}
	if op.kind == opLike {
		mv.glob = glob
	}
	return mv
}

// compileGlob splits a pattern into literals, '*' (any run of characters, including none)
// and '?' (exactly one character).
func compileGlob(p string) []globToken {
	var toks []globToken
	start := 0
	for i := 0; i < len(p); i++ {
		if p[i] != '*' && p[i] != '?' {
			continue
		}
		if i > start {
			toks = append(toks, globToken{kind: globLiteral, lit: p[start:i]})
		}
		if p[i] == '*' {
			if n := len(toks); n == 0 || toks[n-1].kind != globStar {
				toks = append(toks, globToken{kind: globStar})
			}
		} else {
			toks = append(toks, globToken{kind: globOne})
		}
		start = i + 1
	}
	if start < len(p) {
		toks = append(toks, globToken{kind: globLiteral, lit: p[start:]})
	}
	return toks
}

// globMatch matches s against a compiled pattern, case-sensitively. It backtracks only to
// the last '*', so it runs in O(len(pattern)·len(s)) at worst and never allocates.
func globMatch(toks []globToken, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case globStar:
				starTi, starSi = ti, si
				ti++
				continue
			case globOne:
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			default:
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if starTi < 0 || starSi >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starSi:])
		starSi += n
		ti, si = starTi+1, starSi
	}
}

// keyState says what the checker knows about a condition key in the request context.
type keyState uint8

const (
	keyUnknown keyState = iota // may or may not be present; its value is unknown
	keyPresent                 // present, with a known value
	keyAbsent                  // known to be absent
)

// evalCondition evaluates one condition entry against the key's state and value.
func evalCondition(c *Condition, state keyState, value string) tri {
	op := c.op
	if op.kind == opUnsupported || state == keyUnknown {
		return unknown
	}
	if op.kind == opNull {
		// "Null": {"k": "true"} holds when k is absent, "false" when it is present.
		r := no
		for i := range c.vals {
			switch c.vals[i].text {
			case "true":
				r = or(r, triOf(state == keyAbsent))
			case "false":
				r = or(r, triOf(state == keyPresent))
			default:
				r = or(r, unknown)
			}
		}
		return r
	}
	if state == keyAbsent {
		switch {
		case op.ifExists:
			return yes // ...IfExists: a missing key satisfies the condition
		case op.set == setForAll:
			return yes // ForAllValues over the empty set is true
		case op.set == setForAny:
			return no // ForAnyValue over the empty set is false
		case op.negated:
			return yes // a missing key satisfies a negated operator
		}
		return no // and fails a positive one
	}
	// Present, single-valued: the set qualifiers see a one-element set, for which "all" and
	// "any" both reduce to the plain operator.
	if op.kind.typed() {
		// A positive typed comparison cannot match a value that is not of its type (a sub
		// claim is never a number, a date, an IP address or an ARN): the condition fails.
		// IAM's documentation does not say how a negated one (NumericNotEquals, NotIpAddress,
		// ArnNotLike, ...) treats such a value, and the comparisons themselves are not
		// implemented here, so everything else stays unknown.
		if !op.negated && !op.kind.couldBe(value) {
			return no
		}
		return unknown
	}
	match := no
	for i := range c.vals {
		match = or(match, matchOne(op.kind, &c.vals[i], value))
		if match == yes {
			break
		}
	}
	if op.negated {
		return not(match) // several values under a negated operator: none may match (NOR)
	}
	return match
}

func matchOne(kind opKind, v *matchValue, value string) tri {
	if v.variable {
		return unknown
	}
	switch kind {
	case opEquals:
		return triOf(v.text == value)
	case opEqualsIgnore:
		return triOf(strings.EqualFold(v.text, value))
	case opLike:
		return triOf(globMatch(v.glob, value))
	}
	return unknown
}
