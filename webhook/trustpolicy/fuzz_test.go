package trustpolicy

import (
	"net/url"
	"strings"
	"testing"
)

// fuzzSeeds are documents the fuzzers start from; testdata/fuzz holds more.
func fuzzSeeds() []string {
	return []string{
		fill(eksDocsPolicy),
		fill(eksctlPolicy),
		fill(eksctlAudOnlyPolicy),
		fill(terraformPolicy),
		fill(terraformLikePolicy),
		getRoleDocument,
		withCondition(fill(`{"ForAnyValue:StringLike":{"ISSUER:sub":["system:serviceaccount:production:*"]},"Null":{"ISSUER:aud":false},"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`)),
		fill(`{"Statement":[{"Effect":"Deny","NotPrincipal":{"Federated":"PROVIDER"},"NotAction":"sts:Tag*"},{"Effect":"Allow","Principal":"*","Action":"*"}]}`),
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:*","Condition":{"StringLike":{"k":"${*}x${aws:username}"}}}}`,
	}
}

// FuzzParse checks that Parse never panics, that whatever it accepts can be evaluated, and
// that a JSON document and its URL-encoded form parse to the same verdict.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := Parse(doc)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and an error %v", err)
			}
			return
		}
		v := Evaluate(p, testRequest())
		if v.Result == NotTrusted && !hasSeverity(v, Error) {
			t.Fatalf("NotTrusted without an Error finding")
		}
		if !strings.HasPrefix(strings.TrimSpace(doc), "{") {
			return
		}
		encoded := url.QueryEscape(doc)
		if len(encoded) > MaxDocumentLen {
			return
		}
		pe, err := Parse(encoded)
		if err != nil {
			t.Fatalf("the URL-encoded form of an accepted document fails: %v", err)
		}
		if ve := Evaluate(pe, testRequest()); ve.Result != v.Result {
			t.Fatalf("URL-encoded form evaluates to %v, JSON to %v", ve.Result, v.Result)
		}
	})
}

// irrelevantStatements are Allow statements that can never apply to the request: another
// cluster's provider, a service principal, or an action other than web identity.
var irrelevantStatements = fill(`{"Statement":[
	{"Effect":"Allow","Principal":{"Federated":"OTHERPROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"},
	{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
	{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":["sts:AssumeRole","sts:TagSession"]}]}`)

// FuzzEvaluate checks that Evaluate never panics for any policy and request, and that
// appending statements that cannot apply never changes the verdict: in particular a policy
// that trusts the request keeps trusting it.
func FuzzEvaluate(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s, "production", "s3-writer", testAudience)
		f.Add(s, "staging", "default", "")
	}
	extra, err := Parse(irrelevantStatements)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc, ns, sa, aud string) {
		p, err := Parse(doc)
		if err != nil {
			return
		}
		r := testRequest()
		r.Namespace, r.ServiceAccount, r.Audience = ns, sa, aud
		v := Evaluate(p, r)
		switch v.Result {
		case Trusted, NotTrusted, Undetermined:
		default:
			t.Fatalf("Result %d is not a Result", v.Result)
		}
		if v.Result == NotTrusted && !hasSeverity(v, Error) {
			t.Fatalf("NotTrusted without an Error finding")
		}
		if c := v.Claims(); (v.Result == NotTrusted || v.Result == Undetermined) != (len(c) > 0) {
			t.Fatalf("%v verdict with claims %v:\n%s", v.Result, c, dumpFindings(v))
		}
		for _, fd := range v.Findings {
			if fd.Message == "" || fd.Statement >= len(p.Statements) {
				t.Fatalf("malformed finding %+v", fd)
			}
		}
		grown := *p
		grown.Statements = append(append([]Statement(nil), p.Statements...), extra.Statements...)
		if g := Evaluate(&grown, r); g.Result != v.Result {
			t.Fatalf("appending statements that cannot apply changed %v into %v:\n%s", v.Result, g.Result, dumpFindings(g))
		}
	})
}
