package trustpolicy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// operatorCase evaluates a policy with one Allow statement for this cluster whose Condition
// is {op: {key: values}}, where key "sub" and "aud" stand for this issuer's keys.
type operatorCase struct {
	name   string
	op     string
	key    string
	values string // raw JSON
	req    func(*Request)
	want   Result
}

func runOperatorCases(t *testing.T, cases []operatorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "sub" || key == "aud" {
				key = testIssuer + ":" + key
			}
			doc := withCondition(fmt.Sprintf(`{%q: {%q: %s}}`, tc.op, key, tc.values))
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			checkVerdict(t, Evaluate(mustParse(t, doc), r), tc.want, nil)
		})
	}
}

func audience(a string) func(*Request) { return func(r *Request) { r.Audience = a } }
func namespace(ns string) func(*Request) {
	return func(r *Request) { r.Namespace = ns }
}

func TestStringEquals(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "exact match", op: "StringEquals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "other namespace", op: "StringEquals", key: "sub", values: `"system:serviceaccount:staging:s3-writer"`, want: NotTrusted},
		{name: "values are case-sensitive", op: "StringEquals", key: "sub", values: `"system:serviceaccount:Production:s3-writer"`, want: NotTrusted},
		{name: "one of several values matches", op: "StringEquals", key: "sub", values: `["system:serviceaccount:staging:s3-writer", "system:serviceaccount:production:s3-writer"]`, want: Trusted},
		{name: "none of several values matches", op: "StringEquals", key: "sub", values: `["system:serviceaccount:staging:s3-writer", "system:serviceaccount:dev:s3-writer"]`, want: NotTrusted},
		{name: "star is literal", op: "StringEquals", key: "sub", values: `"system:serviceaccount:production:*"`, want: NotTrusted},
		{name: "number value", op: "StringEquals", key: "aud", values: `12345`, req: audience("12345"), want: Trusted},
		{name: "boolean value", op: "StringEquals", key: "aud", values: `true`, req: audience("true"), want: Trusted},
		{name: "mixed list", op: "StringEquals", key: "aud", values: `[1, false, "sts.amazonaws.com"]`, want: Trusted},
		{name: "key is case-insensitive", op: "StringEquals", key: strings.ToUpper(testIssuer) + ":SUB", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "key of lower-cased issuer", op: "StringEquals", key: strings.ToLower(testIssuer) + ":Sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "operator name is case-insensitive", op: "stringequals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "aud mismatch", op: "StringEquals", key: "aud", values: `"sts.amazonaws.com"`, req: audience("vault"), want: NotTrusted},
		{name: "aud unknown when the request has none", op: "StringEquals", key: "aud", values: `"sts.amazonaws.com"`, req: audience(""), want: Undetermined},
	})
}

func TestStringNotEquals(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "value differs", op: "StringNotEquals", key: "sub", values: `"system:serviceaccount:kube-system:default"`, want: Trusted},
		{name: "value equal", op: "StringNotEquals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: NotTrusted},
		{name: "several values are NOR: neither", op: "StringNotEquals", key: "sub", values: `["system:serviceaccount:a:b", "system:serviceaccount:c:d"]`, want: Trusted},
		{name: "several values are NOR: one equal", op: "StringNotEquals", key: "sub", values: `["system:serviceaccount:a:b", "system:serviceaccount:production:s3-writer"]`, want: NotTrusted},
		{name: "case-sensitive", op: "StringNotEquals", key: "sub", values: `"SYSTEM:SERVICEACCOUNT:PRODUCTION:S3-WRITER"`, want: Trusted},
	})
}

func TestStringEqualsIgnoreCase(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "equal ignoring case", op: "StringEqualsIgnoreCase", key: "sub", values: `"SYSTEM:SERVICEACCOUNT:PRODUCTION:S3-WRITER"`, want: Trusted},
		{name: "different", op: "StringEqualsIgnoreCase", key: "sub", values: `"system:serviceaccount:staging:s3-writer"`, want: NotTrusted},
		{name: "not-equals, equal ignoring case", op: "StringNotEqualsIgnoreCase", key: "sub", values: `"System:ServiceAccount:Production:S3-Writer"`, want: NotTrusted},
		{name: "not-equals, different", op: "StringNotEqualsIgnoreCase", key: "sub", values: `"system:serviceaccount:staging:s3-writer"`, want: Trusted},
		{name: "not-equals, NOR over values", op: "StringNotEqualsIgnoreCase", key: "aud", values: `["A", "STS.AMAZONAWS.COM"]`, want: NotTrusted},
	})
}

func TestStringLike(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "any name in namespace", op: "StringLike", key: "sub", values: `"system:serviceaccount:production:*"`, want: Trusted},
		{name: "any namespace", op: "StringLike", key: "sub", values: `"system:serviceaccount:*:s3-writer"`, want: Trusted},
		{name: "question mark is one character", op: "StringLike", key: "sub", values: `"system:serviceaccount:prod?ction:s3-writer"`, want: Trusted},
		{name: "question mark needs a character", op: "StringLike", key: "sub", values: `"system:serviceaccount:production:s3-writer?"`, want: NotTrusted},
		{name: "star matches nothing too", op: "StringLike", key: "sub", values: `"system:serviceaccount:production:s3-writer*"`, want: Trusted},
		{name: "everything", op: "StringLike", key: "sub", values: `"*"`, want: Trusted},
		{name: "other namespace", op: "StringLike", key: "sub", values: `"system:serviceaccount:staging:*"`, want: NotTrusted},
		{name: "case-sensitive", op: "StringLike", key: "sub", values: `"system:serviceaccount:PRODUCTION:*"`, want: NotTrusted},
		{name: "list, second matches", op: "StringLike", key: "sub", values: `["system:serviceaccount:staging:*", "system:serviceaccount:production:s3-*"]`, want: Trusted},
		{name: "anchored at both ends", op: "StringLike", key: "sub", values: `"serviceaccount:production:*"`, want: NotTrusted},
		{name: "escaped star is literal (2012-10-17)", op: "StringLike", key: "sub", values: `"system:serviceaccount:production:${*}"`, want: NotTrusted},
		{name: "policy variable is unknown", op: "StringLike", key: "sub", values: `"system:serviceaccount:production:${aws:username}"`, want: Undetermined},
		{name: "unterminated variable is unknown", op: "StringLike", key: "sub", values: `"system:serviceaccount:${production"`, want: Undetermined},
		{name: "variable in one value, another matches", op: "StringLike", key: "sub", values: `["${aws:username}", "system:serviceaccount:production:*"]`, want: Trusted},
	})
}

func TestStringNotLike(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "not like another namespace", op: "StringNotLike", key: "sub", values: `"system:serviceaccount:staging:*"`, want: Trusted},
		{name: "like this namespace", op: "StringNotLike", key: "sub", values: `"system:serviceaccount:production:*"`, want: NotTrusted},
		{name: "NOR: neither pattern", op: "StringNotLike", key: "sub", values: `["*:kube-system:*", "*:default:*"]`, want: Trusted},
		{name: "NOR: one pattern matches", op: "StringNotLike", key: "sub", values: `["*:kube-system:*", "*:production:*"]`, want: NotTrusted},
		{name: "unknown variable under NOR", op: "StringNotLike", key: "sub", values: `["${aws:username}", "*:kube-system:*"]`, want: Undetermined},
		{name: "unknown variable, a pattern matches anyway", op: "StringNotLike", key: "sub", values: `["${aws:username}", "*:production:*"]`, want: NotTrusted},
	})
}

func TestSetOperators(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "ForAnyValue:StringEquals match", op: "ForAnyValue:StringEquals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "ForAnyValue:StringEquals mismatch", op: "ForAnyValue:StringEquals", key: "sub", values: `"system:serviceaccount:staging:s3-writer"`, want: NotTrusted},
		{name: "ForAllValues:StringEquals match", op: "ForAllValues:StringEquals", key: "aud", values: `["sts.amazonaws.com", "other"]`, want: Trusted},
		{name: "ForAllValues:StringEquals mismatch", op: "ForAllValues:StringEquals", key: "aud", values: `"other"`, want: NotTrusted},
		{name: "ForAnyValue:StringLike list", op: "ForAnyValue:StringLike", key: "sub", values: `["system:serviceaccount:staging:*", "system:serviceaccount:production:*"]`, want: Trusted},
		{name: "ForAllValues:StringNotEquals", op: "ForAllValues:StringNotEquals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: NotTrusted},
		{name: "ForAnyValue:StringNotLike", op: "ForAnyValue:StringNotLike", key: "sub", values: `"system:serviceaccount:staging:*"`, want: Trusted},
		{name: "prefix is case-insensitive", op: "forallvalues:stringequals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "unknown prefix is an unknown operator", op: "ForSomeValues:StringEquals", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Undetermined},
	})
}

func TestIfExists(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "present key matches", op: "StringEqualsIfExists", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "present key does not match", op: "StringEqualsIfExists", key: "sub", values: `"system:serviceaccount:staging:s3-writer"`, want: NotTrusted},
		{name: "StringLikeIfExists", op: "StringLikeIfExists", key: "sub", values: `"system:serviceaccount:production:*"`, want: Trusted},
		{name: "StringNotEqualsIfExists excludes", op: "StringNotEqualsIfExists", key: "aud", values: `"sts.amazonaws.com"`, want: NotTrusted},
		{name: "set prefix and suffix", op: "ForAnyValue:StringEqualsIfExists", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "suffix is case-insensitive", op: "StringEqualsifexists", key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Trusted},
		{name: "unknown key stays unknown", op: "StringEqualsIfExists", key: "aws:PrincipalTag/team", values: `"storage"`, want: Undetermined},
	})
}

func TestNull(t *testing.T) {
	runOperatorCases(t, []operatorCase{
		{name: "sub is present", op: "Null", key: "sub", values: `"false"`, want: Trusted},
		{name: "sub is not absent", op: "Null", key: "sub", values: `"true"`, want: NotTrusted},
		{name: "boolean value", op: "Null", key: "sub", values: `false`, want: Trusted},
		{name: "either", op: "Null", key: "sub", values: `["true", "false"]`, want: Trusted},
		{name: "aud unknown without an audience", op: "Null", key: "aud", values: `"false"`, req: audience(""), want: Undetermined},
		{name: "not a boolean", op: "Null", key: "sub", values: `"maybe"`, want: Undetermined},
		{name: "unknown key", op: "Null", key: "aws:SourceIp", values: `"true"`, want: Undetermined},
		{name: "NullIfExists is not an operator", op: "NullIfExists", key: "sub", values: `"false"`, want: Undetermined},
	})
}

func TestUnsupportedOperators(t *testing.T) {
	var cases []operatorCase
	// Positive typed operators on sub are a non-match (TestTypedOperatorsOnKnownClaims).
	for _, op := range []string{"NotIpAddress", "ArnNotEquals", "NumericNotEqualsIfExists", "BinaryEquals", "StringLikeIgnoreCase", "ForAllValues:Null"} {
		cases = append(cases, operatorCase{name: op, op: op, key: "sub", values: `"system:serviceaccount:production:s3-writer"`, want: Undetermined})
	}
	runOperatorCases(t, cases)
}

// TestAbsentKey checks IAM's rules for a key missing from the request context. The request
// this package models has no key it knows to be absent, so these go to evalCondition.
func TestAbsentKey(t *testing.T) {
	cases := []struct {
		op     string
		values []string
		want   tri
	}{
		{"StringEquals", []string{"a"}, no},
		{"StringNotEquals", []string{"a"}, yes},
		{"StringEqualsIgnoreCase", []string{"a"}, no},
		{"StringNotEqualsIgnoreCase", []string{"a"}, yes},
		{"StringLike", []string{"*"}, no},
		{"StringNotLike", []string{"*"}, yes},
		{"StringEqualsIfExists", []string{"a"}, yes},
		{"StringNotLikeIfExists", []string{"a"}, yes},
		{"ForAllValues:StringEquals", []string{"a"}, yes},
		{"ForAllValues:StringNotEquals", []string{"a"}, yes},
		{"ForAnyValue:StringEquals", []string{"a"}, no},
		{"ForAnyValue:StringNotEquals", []string{"a"}, no},
		{"ForAnyValue:StringLikeIfExists", []string{"a"}, yes},
		{"Null", []string{"true"}, yes},
		{"Null", []string{"false"}, no},
		{"Bool", []string{"true"}, no},
		{"NotIpAddress", []string{"10.0.0.0/8"}, yes},
		{"BinaryEquals", []string{"QmluYXJ5"}, unknown},
	}
	for _, tc := range cases {
		t.Run(tc.op+"/"+strings.Join(tc.values, ","), func(t *testing.T) {
			c := compiledCondition(tc.op, tc.values)
			if got := evalCondition(&c, keyAbsent, ""); got != tc.want {
				t.Errorf("absent key: got %v, want %v", got, tc.want)
			}
			if got := evalCondition(&c, keyUnknown, ""); got != unknown {
				t.Errorf("unknown key: got %v, want unknown", got)
			}
		})
	}
}

func compiledCondition(op string, values []string) Condition {
	c := Condition{Operator: op, Key: "k", Values: values, op: parseOperator(op), key: "k"}
	for _, v := range values {
		c.vals = append(c.vals, compileValue(v, c.op, true))
	}
	return c
}

func TestThreeValuedLogic(t *testing.T) {
	vals := []tri{no, yes, unknown}
	for _, a := range vals {
		if not(not(a)) != a {
			t.Errorf("not(not(%v)) != %v", a, a)
		}
		for _, b := range vals {
			if and(a, b) != and(b, a) || or(a, b) != or(b, a) {
				t.Errorf("and/or not commutative for %v, %v", a, b)
			}
			// De Morgan holds in Kleene logic.
			if not(and(a, b)) != or(not(a), not(b)) {
				t.Errorf("De Morgan fails for %v, %v", a, b)
			}
		}
	}
	if and(no, unknown) != no || or(yes, unknown) != yes || and(yes, unknown) != unknown || or(no, unknown) != unknown {
		t.Error("Kleene identities do not hold")
	}
}

func TestCombine(t *testing.T) {
	cases := []struct {
		name        string
		deny, allow tri
		want        Result
	}{
		{"nothing applies", no, no, NotTrusted},
		{"allow", no, yes, Trusted},
		{"unknown allow", no, unknown, Undetermined},
		{"deny", yes, yes, NotTrusted},
		{"deny, unknown allow", yes, unknown, NotTrusted},
		{"deny, no allow", yes, no, NotTrusted},
		{"unknown deny over allow", unknown, yes, Undetermined},
		{"unknown deny, unknown allow", unknown, unknown, Undetermined},
		{"unknown deny, no allow", unknown, no, NotTrusted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := combine(tc.deny, tc.allow); got != tc.want {
				t.Errorf("combine(deny=%v, allow=%v) = %v, want %v", tc.deny, tc.allow, got, tc.want)
			}
		})
	}
}

func TestParseOperator(t *testing.T) {
	cases := []struct {
		name string
		want operator
	}{
		{"StringEquals", operator{kind: opEquals}},
		{"StringNotEquals", operator{kind: opEquals, negated: true}},
		{"StringEqualsIgnoreCase", operator{kind: opEqualsIgnore}},
		{"StringNotEqualsIgnoreCaseIfExists", operator{kind: opEqualsIgnore, negated: true, ifExists: true}},
		{"StringLike", operator{kind: opLike}},
		{"ForAllValues:StringNotLike", operator{kind: opLike, negated: true, set: setForAll}},
		{"ForAnyValue:StringLikeIfExists", operator{kind: opLike, set: setForAny, ifExists: true}},
		{"Null", operator{kind: opNull}},
		{"IfExists", operator{}},
		{"ForAnyValue:", operator{}},
		{"ArnLike", operator{kind: opArn}},
		{"ForAnyValue:ArnNotLikeIfExists", operator{kind: opArn, negated: true, set: setForAny, ifExists: true}},
		{"NumericGreaterThanEquals", operator{kind: opNumeric}},
		{"BinaryEquals", operator{}},
		{"", operator{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseOperator(tc.name); got != tc.want {
				t.Errorf("parseOperator(%q) = %+v, want %+v", tc.name, got, tc.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"?", "", false},
		{"?", "é", true}, // one character, not one byte
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"*:production:*", "system:serviceaccount:production:s3", true},
		{"a**b", "ab", true},
		{"*a*a*a*a*a*a*a*b", strings.Repeat("a", 200), false},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+"~"+tc.s, func(t *testing.T) {
			if got := globMatch(compileGlob(tc.pattern), tc.s); got != tc.want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
			}
		})
	}
}

// TestGlobMatchAgainstReference compares the backtracking matcher with a plain recursive
// definition on random short patterns and strings.
func TestGlobMatchAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab*?"
	gen := func(n int, chars string) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	for i := 0; i < 20000; i++ {
		p, s := gen(7, alphabet), gen(7, "ab")
		if got, want := globMatch(compileGlob(p), s), referenceGlob(p, s); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, reference says %v", p, s, got, want)
		}
	}
}

func referenceGlob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		return referenceGlob(p[1:], s) || s != "" && referenceGlob(p, s[1:])
	case '?':
		return s != "" && referenceGlob(p[1:], s[1:])
	}
	return s != "" && s[0] == p[0] && referenceGlob(p[1:], s[1:])
}

func (t tri) String() string {
	switch t {
	case yes:
		return "true"
	case no:
		return "false"
	}
	return "unknown"
}
