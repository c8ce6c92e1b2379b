package trustpolicy

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseShapes(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []Statement // only the exported fields are compared
	}{
		{
			name: "statement as an object",
			doc:  `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"}}`,
			want: []Statement{{Effect: Allow, Principal: Principal{Federated: []string{testProvider}}, Actions: []string{Action}}},
		},
		{
			name: "statement as a list, order and Sid kept",
			doc: `{"Statement":[
				{"Sid":"First","Effect":"Deny","Principal":"*","Action":["sts:AssumeRole","sts:TagSession"]},
				{"Sid":"Second","Effect":"Allow","NotPrincipal":{"AWS":["111122223333","arn:aws:iam::111122223333:root"]},"NotAction":"iam:*"}]}`,
			want: []Statement{
				{Sid: "First", Effect: Deny, Principal: Principal{All: true}, Actions: []string{"sts:AssumeRole", "sts:TagSession"}},
				{Sid: "Second", Effect: Allow, Principal: Principal{AWS: []string{"111122223333", "arn:aws:iam::111122223333:root"}}, NotPrincipal: true, Actions: []string{"iam:*"}, NotAction: true},
			},
		},
		{
			name: "every principal type",
			doc:  `{"Statement":{"Effect":"Allow","Principal":{"AWS":"*","Federated":["PROVIDER","accounts.google.com"],"Service":"ec2.amazonaws.com","CanonicalUser":"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},"Action":"*"}}`,
			want: []Statement{{Effect: Allow, Principal: Principal{
				AWS: []string{"*"}, Federated: []string{testProvider, "accounts.google.com"}, Service: []string{"ec2.amazonaws.com"},
				CanonicalUser: []string{"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"},
			}, Actions: []string{"*"}}},
		},
		{
			name: "conditions in document order, scalar values as text",
			doc: `{"Statement":{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{
				"StringLike":{"ISSUER:sub":["system:serviceaccount:a:*","system:serviceaccount:b:*"],"ISSUER:aud":"sts.amazonaws.com"},
				"Bool":{"aws:SecureTransport":true},
				"NumericLessThan":{"aws:MultiFactorAuthAge":3600.5}}}}`,
			want: []Statement{{Effect: Allow, Principal: Principal{Federated: []string{testProvider}}, Actions: []string{Action}, Conditions: []Condition{
				{Operator: "StringLike", Key: testIssuer + ":sub", Values: []string{"system:serviceaccount:a:*", "system:serviceaccount:b:*"}},
				{Operator: "StringLike", Key: testIssuer + ":aud", Values: []string{"sts.amazonaws.com"}},
				{Operator: "Bool", Key: "aws:SecureTransport", Values: []string{"true"}},
				{Operator: "NumericLessThan", Key: "aws:MultiFactorAuthAge", Values: []string{"3600.5"}},
			}}},
		},
		{
			name: "element names are case-insensitive",
			doc:  `{"statement":[{"effect":"deny","principal":{"federated":"PROVIDER"},"action":"STS:AssumeRoleWithWebIdentity","sid":"x"}]}`,
			want: []Statement{{Sid: "x", Effect: Deny, Principal: Principal{Federated: []string{testProvider}}, Actions: []string{"STS:AssumeRoleWithWebIdentity"}}},
		},
		{
			name: "empty statement list",
			doc:  `{"Version":"2012-10-17","Statement":[]}`,
			want: []Statement{},
		},
		{
			name: "empty Condition object",
			doc:  `{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{}}}`,
			want: []Statement{{Effect: Allow, Principal: Principal{All: true}, Actions: []string{"sts:*"}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, fill(tc.doc))
			got := exported(p.Statements)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("statements:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// exported copies statements keeping only their exported fields.
func exported(ss []Statement) []Statement {
	out := make([]Statement, len(ss))
	for i, s := range ss {
		out[i] = Statement{Sid: s.Sid, Effect: s.Effect, Principal: s.Principal, NotPrincipal: s.NotPrincipal, Actions: s.Actions, NotAction: s.NotAction}
		for _, c := range s.Conditions {
			out[i].Conditions = append(out[i].Conditions, Condition{Operator: c.Operator, Key: c.Key, Values: c.Values})
		}
	}
	return out
}

func TestParseVersionAndID(t *testing.T) {
	p := mustParse(t, `{"Version":"2008-10-17","Id":"trust","Statement":[]}`)
	if p.Version != Version2008 || p.ID != "trust" {
		t.Errorf("Version, ID = %q, %q", p.Version, p.ID)
	}
}

// getRoleDocument is a trust policy as IAM's GetRole returns it: URL-encoded (RFC 3986,
// with %20 for the spaces and newlines the author typed). The second sub value has a
// literal "%2F" in it, which arrives encoded as "%252F".
const getRoleDocument = `%7B%0A%20%20%22Version%22%3A%20%222012-10-17%22%2C%0A%20%20%22Statement%22%3A%20%5B%0A%20%20%20%20%7B%0A%20%20%20%20%20%20%22Sid%22%3A%20%22AllowS3Writer%22%2C%0A%20%20%20%20%20%20%22Effect%22%3A%20%22Allow%22%2C%0A%20%20%20%20%20%20%22Principal%22%3A%20%7B%0A%20%20%20%20%20%20%20%20%22Federated%22%3A%20%22arn%3Aaws%3Aiam%3A%3A111122223333%3Aoidc-provider%2Foidc.eks.us-east-1.amazonaws.com%2Fid%2FEXAMPLED539D4633E53DE1B716D3041E%22%0A%20%20%20%20%20%20%7D%2C%0A%20%20%20%20%20%20%22Action%22%3A%20%22sts%3AAssumeRoleWithWebIdentity%22%2C%0A%20%20%20%20%20%20%22Condition%22%3A%20%7B%0A%20%20%20%20%20%20%20%20%22StringEquals%22%3A%20%7B%0A%20%20%20%20%20%20%20%20%20%20%22oidc.eks.us-east-1.amazonaws.com%2Fid%2FEXAMPLED539D4633E53DE1B716D3041E%3Asub%22%3A%20%5B%22system%3Aserviceaccount%3Aproduction%3As3-writer%22%2C%20%22system%3Aserviceaccount%3Aodd%252Fname%3Ax%22%5D%2C%0A%20%20%20%20%20%20%20%20%20%20%22oidc.eks.us-east-1.amazonaws.com%2Fid%2FEXAMPLED539D4633E53DE1B716D3041E%3Aaud%22%3A%20%22sts.amazonaws.com%22%0A%20%20%20%20%20%20%20%20%7D%0A%20%20%20%20%20%20%7D%0A%20%20%20%20%7D%0A%20%20%5D%0A%7D`

func TestParseURLEncoded(t *testing.T) {
	plain := withCondition(`{"StringEquals": {"ISSUER:sub": "system:serviceaccount:production:s3-writer", "ISSUER:aud": "sts.amazonaws.com"}}`)
	cases := []struct {
		name      string
		doc       string
		wantValue string // a sub value that must be present verbatim
	}{
		{name: "GetRole document", doc: getRoleDocument, wantValue: "system:serviceaccount:odd%2Fname:x"},
		{name: "query-escaped, + for spaces", doc: url.QueryEscape(plain), wantValue: testSubject},
		{name: "path-escaped, %20 for spaces", doc: url.PathEscape(plain), wantValue: testSubject},
		{name: "surrounding whitespace", doc: "\n  " + url.QueryEscape(plain) + "\n", wantValue: testSubject},
		{name: "plain JSON keeps a literal %2F", doc: withCondition(`{"StringEquals": {"ISSUER:sub": ["system:serviceaccount:odd%2Fname:x", "system:serviceaccount:production:s3-writer"]}}`), wantValue: "system:serviceaccount:odd%2Fname:x"},
		{name: "plain JSON after whitespace", doc: "\t\n " + plain, wantValue: testSubject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, tc.doc)
			var values []string
			for _, c := range p.Statements[0].Conditions {
				if strings.HasSuffix(c.Key, ":sub") {
					values = append(values, c.Values...)
				}
			}
			if !slices.Contains(values, tc.wantValue) {
				t.Errorf("sub values %q do not contain %q", values, tc.wantValue)
			}
			checkVerdict(t, Evaluate(p, testRequest()), Trusted, nil)
		})
	}
}

func TestParseDecodesOnce(t *testing.T) {
	// Encoded twice: decoding once leaves URL-encoded text, which is not JSON.
	twice := url.QueryEscape(url.QueryEscape(withCondition(`{}`)))
	if _, err := Parse(twice); err == nil || !strings.Contains(err.Error(), "neither JSON nor URL-encoded JSON") {
		t.Errorf("Parse(doubly encoded) error = %v, want a neither-JSON-nor-URL-encoded error", err)
	}
}

func TestParseErrors(t *testing.T) {
	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	ok := `{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRoleWithWebIdentity"}`
	cases := []struct {
		name string
		doc  string
		want string // substring of the error
	}{
		{"empty", "  ", "policy document is empty"},
		{"not JSON", "hello", "neither JSON nor URL-encoded JSON"},
		{"bad escape", "%7B%ZZ", "URL-decode"},
		{"truncated JSON", `{"Statement": [`, "not valid JSON"},
		{"trailing data", `{"Statement": []} {}`, "after the policy object"},
		{"array at top", `[` + ok + `]`, "neither JSON nor URL-encoded JSON"},
		{"too large", "{" + strings.Repeat(" ", MaxDocumentLen) + "}", "more than the"},
		{"too deep", `{"Statement": ` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "nested deeper"},
		{"no Statement", `{"Version":"2012-10-17"}`, "has no Statement"},
		{"bad Version", `{"Version":"2020-01-01","Statement":[]}`, `Version "2020-01-01"`},
		{"Version not a string", `{"Version":2012,"Statement":[]}`, "Version must be a string"},
		{"unknown top-level element", `{"Statement":[],"Extra":1}`, `unknown top-level element "Extra"`},
		{"duplicate top-level element", `{"Statement":[],"statement":[]}`, `element "statement" appears more than once`},
		{"Statement a string", `{"Statement":"x"}`, "Statement must be an object or a list"},
		{"statement not an object", stmt(ok + `,"x"`), "statement 1: must be an object"},
		{"no Effect", stmt(ok + `,{"Principal":"*","Action":"sts:*"}`), "statement 1: has no Effect"},
		{"bad Effect", stmt(`{"Effect":"Permit","Principal":"*","Action":"sts:*"}`), `statement 0: Effect is "Permit"`},
		{"Effect not a string", stmt(`{"Effect":true,"Principal":"*","Action":"sts:*"}`), "statement 0: Effect must be a string"},
		{"no Principal", stmt(`{"Effect":"Allow","Action":"sts:*"}`), "statement 0: has no Principal or NotPrincipal"},
		{"Principal and NotPrincipal", stmt(`{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"sts:*"}`), "has both Principal and NotPrincipal"},
		{"Principal an ARN string", stmt(`{"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root","Action":"sts:*"}`), `Principal must be "*" or an object`},
		{"Principal a list", stmt(`{"Effect":"Allow","Principal":["*"],"Action":"sts:*"}`), `Principal must be "*" or an object, got a list`},
		{"Principal empty object", stmt(`{"Effect":"Allow","Principal":{},"Action":"sts:*"}`), "Principal is an empty object"},
		{"Principal empty list", stmt(`{"Effect":"Allow","Principal":{"Federated":[]},"Action":"sts:*"}`), "Principal Federated is an empty list"},
		{"Principal number", stmt(`{"Effect":"Allow","Principal":{"AWS":111122223333},"Action":"sts:*"}`), "Principal AWS must be a string or a list of strings"},
		{"unknown principal type", stmt(`{"Effect":"Allow","Principal":{"OIDC":"x"},"Action":"sts:*"}`), `unknown principal type "OIDC"`},
		{"duplicate principal type", stmt(`{"Effect":"Allow","Principal":{"AWS":"*","aws":"*"},"Action":"sts:*"}`), `type "aws" appears more than once`},
		{"no Action", stmt(`{"Effect":"Allow","Principal":"*"}`), "statement 0: has no Action or NotAction"},
		{"Action and NotAction", stmt(`{"Effect":"Allow","Principal":"*","Action":"a","NotAction":"b"}`), "has both Action and NotAction"},
		{"Action not a string", stmt(`{"Effect":"Allow","Principal":"*","Action":["sts:*",1]}`), "Action must be a string or a list of strings, got a number at index 1"},
		{"Action empty list", stmt(`{"Effect":"Allow","Principal":"*","Action":[]}`), "Action is an empty list"},
		{"Resource", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Resource":"*"}`), "Resource element, which a role trust policy cannot have"},
		{"unknown element", stmt(ok + `,{"Effect":"Allow","Principal":"*","Action":"sts:*","Foo":1}`), `statement 1: has unknown element "Foo"`},
		{"duplicate element in statement", stmt(`{"Effect":"Allow","effect":"Deny","Principal":"*","Action":"sts:*"}`), `statement 0: element "effect" appears more than once`},
		{"Sid not a string", stmt(`{"Sid":1,"Effect":"Allow","Principal":"*","Action":"sts:*"}`), "Sid must be a string"},
		{"Condition not an object", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":[]}`), "Condition must be an object of operator blocks"},
		{"operator block not an object", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":"x"}}`), "StringEquals must be an object of condition keys"},
		{"empty operator block", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{}}}`), "StringEquals has no condition keys"},
		{"null value", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"k":null}}}`), `StringEquals "k" must be a string, number, boolean or a list of those, got null`},
		{"object value", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"k":{"a":"b"}}}}`), "got an object"},
		{"empty value list", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"k":[]}}}`), `"k" is an empty list`},
		{"empty key", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"":"x"}}}`), "empty condition key"},
		{"duplicate operator", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"a":"x"},"stringequals":{"b":"y"}}}`), `operator "stringequals" appears more than once`},
		{"keys differing in case", stmt(`{"Effect":"Allow","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"ISSUER:aud":"x","ISSUER:AUD":"y"}}}`), `key "` + testIssuer + `:AUD" appears more than once`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(fill(tc.doc))
			if err == nil {
				t.Fatalf("Parse succeeded (%d statements), want an error containing %q", len(p.Statements), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}
