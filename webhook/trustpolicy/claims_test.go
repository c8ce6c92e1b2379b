package trustpolicy

import (
	"reflect"
	"testing"
)

// TestVerdictClaims pins what the requester may be told: which of its own claims the
// verdict rests on, never anything about other statements.
func TestVerdictClaims(t *testing.T) {
	thisCluster := func(condition string) string { return withCondition(fill(condition)) }
	cases := []struct {
		name string
		doc  string
		req  func(*Request)
		want []Claim
	}{
		{name: "trusted", doc: fill(eksDocsPolicy), want: nil},
		{name: "other namespace", doc: fill(eksDocsPolicy), req: namespace("staging"), want: []Claim{ClaimSubject}},
		{name: "other audience", doc: fill(eksDocsPolicy), req: audience("vault"), want: []Claim{ClaimAudience}},
		{name: "other namespace and audience", doc: fill(eksDocsPolicy), req: func(r *Request) { r.Namespace, r.Audience = "staging", "vault" },
			want: []Claim{ClaimSubject, ClaimAudience}},
		{name: "other cluster", doc: fill(eksDocsPolicy), req: func(r *Request) { r.IssuerURL = "https://" + otherIssuer }, want: []Claim{ClaimProvider}},
		{name: "the statement for this cluster wins over the one for another cluster", doc: fill(terraformPolicy), req: namespace("staging"),
			want: []Claim{ClaimSubject}},
		{name: "another cluster's statement: its sub condition is not the requester's business",
			doc:  fill(`{"Statement":[{"Effect":"Allow","Principal":{"Federated":"OTHERPROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:x:y"}}}]}`),
			want: []Claim{ClaimProvider}},
		{name: "wrong action only", doc: fill(`{"Statement":[{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRole"}]}`),
			want: []Claim{ClaimAction}},
		{name: "explicit deny looks like a provider that is not trusted", doc: fill(`{"Statement":[
				{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"},
				{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"StringLike":{"ISSUER:sub":"system:serviceaccount:production:*"}}}]}`),
			want: []Claim{ClaimProvider}},
		{name: "no Allow statement", doc: fill(`{"Statement":[{"Effect":"Deny","Principal":{"Federated":"OTHERPROVIDER"},"Action":"sts:*"}]}`),
			want: []Claim{ClaimProvider}},
		{name: "invalid policy", doc: fill(`{"Statement":[{"Effect":"allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`),
			want: []Claim{ClaimProvider}},
		{name: "undecidable principal", doc: fill(`{"Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`),
			want: []Claim{ClaimProvider}},
		{name: "unknown key", doc: thisCluster(`{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","aws:PrincipalTag/team":"storage"}}`),
			want: []Claim{NoClaim}},
		{name: "unsupported operator on sub", doc: thisCluster(`{"BinaryEquals":{"ISSUER:sub":"QmluYXJ5"}}`), want: []Claim{ClaimSubject}},
		{name: "unknown audience and unknown key", doc: thisCluster(`{"StringEquals":{"ISSUER:aud":"sts.amazonaws.com"},"Bool":{"aws:SecureTransport":"true"}}`),
			req: audience(""), want: []Claim{NoClaim, ClaimAudience}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			v := Evaluate(mustParse(t, tc.doc), r)
			if got := v.Claims(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Claims() = %v, want %v (%v)\n%s", got, tc.want, v.Result, dumpFindings(v))
			}
		})
	}
}

func TestRequestProvider(t *testing.T) {
	if got := testRequest().Provider(); got != testProvider {
		t.Errorf("Provider() = %q, want %q", got, testProvider)
	}
	r := testRequest()
	r.IssuerURL = "http://x"
	if got := r.Provider(); got != "" {
		t.Errorf("Provider() of an invalid request = %q, want empty", got)
	}
	for c, want := range map[Claim]string{NoClaim: "other", ClaimProvider: "provider", ClaimAction: "action", ClaimSubject: "sub", ClaimAudience: "aud"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", c, c.String(), want)
		}
	}
}
