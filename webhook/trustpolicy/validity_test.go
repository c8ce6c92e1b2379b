package trustpolicy

import (
	"strings"
	"testing"
)

// TestEvaluateInvalidPolicies: policies IAM refuses to save are never trusted, whatever
// their statements say, and the finding names the element at fault. IAM's documentation:
// "The Effect value is case sensitive" (valid values Allow and Deny), and "NotPrincipal
// must be used with "Effect":"Deny". Using it with "Effect":"Allow" is not supported."
func TestEvaluateInvalidPolicies(t *testing.T) {
	trusting := `"Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"`
	cases := []struct {
		name string
		doc  string
		want string // the Error finding
	}{
		{name: "lower-case allow", doc: `{"Statement":[{"Effect":"allow",` + trusting + `}]}`,
			want: `statement 0: Effect "allow" is not valid: IAM accepts exactly "Allow" or "Deny" (case-sensitive) and refuses to save this policy`},
		{name: "upper-case ALLOW", doc: `{"Statement":[{"Effect":"ALLOW",` + trusting + `}]}`,
			want: `statement 0: Effect "ALLOW" is not valid`},
		{name: "lower-case deny next to a trusting Allow", doc: `{"Statement":[{"Effect":"Allow",` + trusting + `},{"Sid":"D","Effect":"deny","Principal":{"Federated":"OTHERPROVIDER"},"Action":"*"}]}`,
			want: `statement 1 (Sid "D"): Effect "deny" is not valid`},
		{name: "Allow with NotPrincipal of another provider", doc: `{"Statement":[{"Effect":"Allow","NotPrincipal":{"Federated":"OTHERPROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`,
			want: `statement 0: NotPrincipal with Effect "Allow" is not valid: IAM supports NotPrincipal only with Effect "Deny" and refuses to save this policy`},
		{name: "Allow with NotPrincipal of this provider", doc: `{"Statement":[{"Effect":"Allow","NotPrincipal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`,
			want: `statement 0: NotPrincipal with Effect "Allow" is not valid`},
		{name: "Allow with NotPrincipal differing in case", doc: `{"Statement":[{"Effect":"Allow","NotPrincipal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + strings.ToLower(testIssuer) + `"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`,
			want: `statement 0: NotPrincipal with Effect "Allow" is not valid`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, fill(tc.doc))
			v := Evaluate(p, testRequest())
			checkVerdict(t, v, NotTrusted, []wantFinding{errorFinding(tc.want)})
			if err := p.Validate(); err == nil || !strings.Contains(err.Error(), strings.SplitN(tc.want, ": ", 2)[1][:20]) {
				t.Errorf("Validate() = %v, want an error naming the element", err)
			}
		})
	}
	t.Run("valid policies validate", func(t *testing.T) {
		for _, doc := range fuzzSeeds() {
			if err := mustParse(t, doc).Validate(); err != nil {
				t.Errorf("Validate(%s) = %v", doc, err)
			}
		}
	})
}

// TestTypedOperatorsOnKnownClaims: a positive Bool, Numeric, Date, IpAddress or Arn
// comparison cannot match a sub or aud value that is not of its type, so it fails (the
// statement does not apply) instead of leaving the verdict undetermined. Where the value
// could be of the type, or the operator is negated (IAM does not document how a negated
// operator treats a value of another type), it stays unknown.
func TestTypedOperatorsOnKnownClaims(t *testing.T) {
	subject := `"system:serviceaccount:production:s3-writer"`
	var cases []operatorCase
	for _, op := range []string{"Bool", "BoolIfExists", "NumericEquals", "NumericLessThan", "NumericGreaterThanEqualsIfExists",
		"DateEquals", "DateGreaterThan", "DateLessThanEquals", "IpAddress", "ArnEquals", "ArnLike", "ForAnyValue:ArnLike", "ForAllValues:NumericEquals"} {
		cases = append(cases,
			operatorCase{name: op + " on sub", op: op, key: "sub", values: subject, want: NotTrusted},
			operatorCase{name: op + " on aud", op: op, key: "aud", values: `"sts.amazonaws.com"`, want: NotTrusted})
	}
	cases = append(cases,
		operatorCase{name: "Bool on a boolean-looking aud", op: "Bool", key: "aud", values: `"true"`, req: audience("true"), want: Undetermined},
		operatorCase{name: "NumericEquals on a numeric aud", op: "NumericEquals", key: "aud", values: `"12345"`, req: audience("12345"), want: Undetermined},
		operatorCase{name: "DateEquals on a date-looking aud", op: "DateEquals", key: "aud", values: `"2020-01-01"`, req: audience("2020-01-01"), want: Undetermined},
		operatorCase{name: "IpAddress on an address aud", op: "IpAddress", key: "aud", values: `"10.0.0.0/8"`, req: audience("10.1.2.3"), want: Undetermined},
		operatorCase{name: "ArnLike on an ARN aud", op: "ArnLike", key: "aud", values: `"arn:aws:*"`, req: audience("arn:aws:iam::111122223333:root"), want: Undetermined},
		operatorCase{name: "aud unknown", op: "Bool", key: "aud", values: `"true"`, req: audience(""), want: Undetermined},
		operatorCase{name: "NotIpAddress stays unknown", op: "NotIpAddress", key: "sub", values: `"10.0.0.0/8"`, want: Undetermined},
		operatorCase{name: "NumericNotEquals stays unknown", op: "NumericNotEquals", key: "sub", values: `"1"`, want: Undetermined},
		operatorCase{name: "DateNotEquals stays unknown", op: "DateNotEquals", key: "sub", values: `"2020-01-01"`, want: Undetermined},
		operatorCase{name: "ArnNotLike stays unknown", op: "ArnNotLike", key: "sub", values: `"arn:*"`, want: Undetermined},
		operatorCase{name: "BinaryEquals stays unknown", op: "BinaryEquals", key: "sub", values: `"QmluYXJ5"`, want: Undetermined},
		operatorCase{name: "typed operator on an unknown key stays unknown", op: "Bool", key: "aws:SecureTransport", values: `"true"`, want: Undetermined},
	)
	runOperatorCases(t, cases)

	t.Run("the finding says why", func(t *testing.T) {
		doc := withCondition(`{"NumericLessThan": {"` + testIssuer + `:sub": "5"}}`)
		v := Evaluate(mustParse(t, doc), testRequest())
		checkVerdict(t, v, NotTrusted, []wantFinding{errorFinding(`statement 0: sub NumericLessThan "5" cannot match "system:serviceaccount:production:s3-writer": it is not a number`)})
	})
	t.Run("a Deny that cannot match no longer blocks a trusting Allow", func(t *testing.T) {
		doc := fill(`{"Statement":[{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":` + subject + `,"ISSUER:aud":"sts.amazonaws.com"}}},
			{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"IpAddress":{"ISSUER:sub":"10.0.0.0/8"}}}]}`)
		checkVerdict(t, Evaluate(mustParse(t, doc), testRequest()), Trusted, nil)
	})
}
