package trustpolicy

import (
	"strings"
	"testing"
)

// Policies shaped like the ones the common tools write (written for these tests from the
// tools' documented output shapes). Placeholders are filled by fill().
const (
	// The AWS EKS user guide: StringEquals on aud and sub.
	eksDocsPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {
        "Federated": "PROVIDER"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "ISSUER:aud": "sts.amazonaws.com",
          "ISSUER:sub": "system:serviceaccount:production:s3-writer"
        }
      }
    }
  ]
}`

	// eksctl create iamserviceaccount: one statement, StringEquals with both keys.
	eksctlPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}}]}`

	// eksctl-style role restricted on aud only (any service account of the cluster).
	eksctlAudOnlyPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:aud":"sts.amazonaws.com"}}}]}`

	// The terraform-aws-modules IRSA role module: one statement per cluster, StringEquals
	// on aud, StringLike on sub with the namespace:serviceaccount list, empty Sids.
	terraformPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "",
      "Effect": "Allow",
      "Principal": {
        "Federated": "OTHERPROVIDER"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "OTHERISSUER:aud": "sts.amazonaws.com"
        },
        "StringLike": {
          "OTHERISSUER:sub": "system:serviceaccount:production:s3-writer"
        }
      }
    },
    {
      "Sid": "",
      "Effect": "Allow",
      "Principal": {
        "Federated": "PROVIDER"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "ISSUER:aud": "sts.amazonaws.com"
        },
        "StringLike": {
          "ISSUER:sub": [
            "system:serviceaccount:production:s3-writer",
            "system:serviceaccount:batch:*"
          ]
        }
      }
    }
  ]
}`

	// The terraform module with assume_role_condition_test = "StringLike": both keys under
	// StringLike.
	terraformLikePolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringLike":{"ISSUER:sub":"system:serviceaccount:production:*","ISSUER:aud":"sts.amazonaws.com"}}}]}`
)

func TestEvaluateRealWorldPolicies(t *testing.T) {
	cases := []struct {
		name       string
		doc        string
		req        func(*Request)
		want       Result
		findings   []wantFinding
		noWarnings bool
	}{
		{name: "EKS docs, matching service account", doc: eksDocsPolicy, want: Trusted, noWarnings: true,
			findings: []wantFinding{infoFinding("statement 0: allows system:serviceaccount:production:s3-writer")}},
		{name: "EKS docs, other namespace", doc: eksDocsPolicy, req: namespace("staging"), want: NotTrusted,
			findings: []wantFinding{errorFinding(`statement 0: sub StringEquals "system:serviceaccount:production:s3-writer" does not match "system:serviceaccount:staging:s3-writer"`)}},
		{name: "EKS docs, other audience", doc: eksDocsPolicy, req: audience("vault"), want: NotTrusted,
			findings: []wantFinding{errorFinding(`aud StringEquals "sts.amazonaws.com" does not match "vault"`)}},
		{name: "EKS docs, other cluster", doc: eksDocsPolicy, req: func(r *Request) { r.IssuerURL = "https://" + otherIssuer }, want: NotTrusted,
			findings: []wantFinding{errorFinding(`principal "` + testProvider + `" is not this cluster's provider "` + otherProvider + `"`)}},
		{name: "EKS docs, issuer with trailing slash", doc: eksDocsPolicy, req: func(r *Request) { r.IssuerURL += "/" }, want: Trusted},
		{name: "EKS docs, issuer without scheme", doc: eksDocsPolicy, req: func(r *Request) { r.IssuerURL = testIssuer }, want: Trusted},
		{name: "eksctl, matching", doc: eksctlPolicy, want: Trusted, noWarnings: true},
		{name: "eksctl, other name", doc: eksctlPolicy, req: func(r *Request) { r.ServiceAccount = "default" }, want: NotTrusted,
			findings: []wantFinding{errorFinding(`does not match "system:serviceaccount:production:default"`)}},
		{name: "eksctl aud only is trusted but broad", doc: eksctlAudOnlyPolicy, req: namespace("anything"), want: Trusted,
			findings: []wantFinding{warningFinding("no condition restricts " + testIssuer + ":sub")}},
		{name: "terraform, second cluster statement matches", doc: terraformPolicy, want: Trusted,
			findings: []wantFinding{infoFinding("statement 1: allows"), warningFinding(`sub StringLike "system:serviceaccount:batch:*" matches any service account name in the namespace`)}},
		{name: "terraform, wildcard namespace entry", doc: terraformPolicy, req: func(r *Request) { r.Namespace, r.ServiceAccount = "batch", "nightly" }, want: Trusted},
		{name: "terraform, no entry matches", doc: terraformPolicy, req: namespace("staging"), want: NotTrusted,
			findings: []wantFinding{
				errorFinding(`statement 0: principal "` + otherProvider + `" is not this cluster's provider "` + testProvider + `"`),
				errorFinding(`statement 1: sub StringLike ["system:serviceaccount:production:s3-writer", "system:serviceaccount:batch:*"] does not match "system:serviceaccount:staging:s3-writer"`),
			}},
		{name: "terraform StringLike for both keys", doc: terraformLikePolicy, req: func(r *Request) { r.ServiceAccount = "reader" }, want: Trusted,
			findings: []wantFinding{warningFinding("matches any service account name in the namespace")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			v := Evaluate(mustParse(t, fill(tc.doc)), r)
			checkVerdict(t, v, tc.want, tc.findings)
			if tc.noWarnings && hasSeverity(v, Warning) {
				t.Errorf("unexpected warnings:\n%s", dumpFindings(v))
			}
		})
	}
}

// TestEvaluateMessages pins whole messages of the findings that explain a refusal.
func TestEvaluateMessages(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		req  func(*Request)
		want []string // Error findings, in order
	}{
		{
			name: "sub mismatch with Sid",
			doc: `{"Version":"2012-10-17","Statement":[{"Sid":"AllowS3Writer","Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity",
				"Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}}]}`,
			req:  namespace("staging"),
			want: []string{`statement 0 (Sid "AllowS3Writer"): sub StringEquals "system:serviceaccount:production:s3-writer" does not match "system:serviceaccount:staging:s3-writer"`},
		},
		{
			name: "every failing part of every Allow statement",
			doc: `{"Statement":[
				{"Effect":"Allow","Principal":{"Federated":"OTHERPROVIDER"},"Action":"sts:AssumeRole"},
				{"Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:kube-system:default"}}},
				{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"NotAction":"sts:*"}]}`,
			want: []string{
				`statement 0: principal "` + otherProvider + `" is not this cluster's provider "` + testProvider + `"`,
				`statement 0: action "sts:AssumeRole" does not match sts:AssumeRoleWithWebIdentity`,
				`statement 2: NotAction "sts:*" excludes sts:AssumeRoleWithWebIdentity`,
			},
		},
		{
			name: "explicit deny",
			doc: `{"Statement":[
				{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity"},
				{"Sid":"NoProduction","Effect":"Deny","Principal":"*","Action":"*","Condition":{"StringLike":{"ISSUER:sub":"system:serviceaccount:production:*"}}}]}`,
			want: []string{`statement 1 (Sid "NoProduction"): explicit Deny applies: its principal, action and conditions all match this service account`},
		},
		{
			name: "no Allow statement",
			doc:  `{"Statement":[{"Effect":"Deny","Principal":{"Federated":"OTHERPROVIDER"},"Action":"sts:*"}]}`,
			want: []string{"no statement has Effect Allow, so nothing grants sts:AssumeRoleWithWebIdentity"},
		},
		{
			name: "NotPrincipal names this provider",
			doc:  `{"Statement":[{"Effect":"Allow","NotPrincipal":{"Federated":["PROVIDER","OTHERPROVIDER"]},"Action":"sts:AssumeRoleWithWebIdentity"}]}`,
			want: []string{`statement 0: NotPrincipal with Effect "Allow" is not valid: IAM supports NotPrincipal only with Effect "Deny" and refuses to save this policy`},
		},
		{
			name: "absent-looking key of the right provider, Null",
			doc:  withCondition(`{"Null": {"ISSUER:sub": "true"}}`),
			want: []string{`statement 0: sub Null "true" fails: the key is present`},
		},
		{
			name: "negated operator",
			doc:  withCondition(`{"StringNotEquals": {"ISSUER:aud": ["sts.amazonaws.com", "x"]}}`),
			want: []string{`statement 0: aud StringNotEquals ["sts.amazonaws.com", "x"] excludes "sts.amazonaws.com"`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			v := Evaluate(mustParse(t, fill(tc.doc)), r)
			if v.Result != NotTrusted {
				t.Fatalf("Result = %v, want NotTrusted:\n%s", v.Result, dumpFindings(v))
			}
			var got []string
			for _, f := range v.Findings {
				if f.Severity == Error {
					got = append(got, f.Message)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Error findings:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEvaluateDeny(t *testing.T) {
	allow := `{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringLike":{"ISSUER:sub":"system:serviceaccount:*:s3-writer"}}}`
	doc := func(deny string) string { return `{"Version":"2012-10-17","Statement":[` + allow + `,` + deny + `]}` }
	cases := []struct {
		name     string
		deny     string
		req      func(*Request)
		want     Result
		findings []wantFinding
	}{
		{name: "deny for this service account", deny: `{"Effect":"Deny","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer"}}}`,
			want: NotTrusted, findings: []wantFinding{errorFinding("statement 1: explicit Deny applies")}},
		{name: "deny for another namespace", deny: `{"Effect":"Deny","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:staging:s3-writer"}}}`,
			want: Trusted},
		{name: "deny other audiences, right audience", deny: `{"Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringNotEquals":{"ISSUER:aud":"sts.amazonaws.com"}}}`,
			want: Trusted},
		{name: "deny other audiences, wrong audience", deny: `{"Effect":"Deny","Principal":"*","Action":"sts:*","Condition":{"StringNotEquals":{"ISSUER:aud":"sts.amazonaws.com"}}}`,
			req: audience("vault"), want: NotTrusted, findings: []wantFinding{errorFinding("explicit Deny applies")}},
		{name: "deny everyone but production", deny: `{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"StringNotLike":{"ISSUER:sub":"system:serviceaccount:production:*"}}}`,
			want: Trusted},
		{name: "deny everyone but production, staging", deny: `{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"StringNotLike":{"ISSUER:sub":"system:serviceaccount:production:*"}}}`,
			req: namespace("staging"), want: NotTrusted},
		{name: "deny with NotPrincipal of this provider", deny: `{"Effect":"Deny","NotPrincipal":{"Federated":"PROVIDER"},"Action":"*"}`,
			want: Trusted},
		{name: "deny with NotPrincipal of another provider", deny: `{"Effect":"Deny","NotPrincipal":{"Federated":"OTHERPROVIDER"},"Action":"*"}`,
			want: NotTrusted},
		{name: "deny other actions only", deny: `{"Effect":"Deny","Principal":"*","Action":["sts:AssumeRole","sts:TagSession"]}`,
			want: Trusted},
		{name: "deny with NotAction covering web identity", deny: `{"Effect":"Deny","Principal":"*","NotAction":"sts:AssumeRoleWithWebIdentity"}`,
			want: Trusted},
		{name: "deny with NotAction not covering web identity", deny: `{"Effect":"Deny","Principal":"*","NotAction":"sts:AssumeRole"}`,
			want: NotTrusted},
		{name: "deny with an unknown condition", deny: `{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}`,
			want: Undetermined, findings: []wantFinding{warningFinding(`statement 1: Deny statement cannot be decided: "aws:SourceIp" NotIpAddress "203.0.113.0/24": the checker does not evaluate the NotIpAddress operator`)}},
		{name: "unknown deny, known false part", deny: `{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"Bool":{"aws:SecureTransport":"false"},"StringEquals":{"ISSUER:sub":"system:serviceaccount:kube-system:x"}}}`,
			want: Trusted},
		{name: "unknown deny, but nothing allows anyway", deny: `{"Effect":"Deny","Principal":"*","Action":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}`,
			req: func(r *Request) { r.ServiceAccount = "reader" }, want: NotTrusted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			checkVerdict(t, Evaluate(mustParse(t, fill(doc(tc.deny))), r), tc.want, tc.findings)
		})
	}
}

func TestEvaluateActions(t *testing.T) {
	cases := []struct {
		name   string
		action string // raw JSON for the Action or NotAction element
		not    bool
		want   Result
	}{
		{name: "exact", action: `"sts:AssumeRoleWithWebIdentity"`, want: Trusted},
		{name: "lower case", action: `"sts:assumerolewithwebidentity"`, want: Trusted},
		{name: "mixed case", action: `"STS:AssumeROLEWithWebIdentity"`, want: Trusted},
		{name: "star", action: `"*"`, want: Trusted},
		{name: "service star", action: `"sts:*"`, want: Trusted},
		{name: "prefix star", action: `"sts:AssumeRole*"`, want: Trusted},
		{name: "question mark", action: `"sts:AssumeRoleWithWebIdentit?"`, want: Trusted},
		{name: "AssumeRole only", action: `"sts:AssumeRole"`, want: NotTrusted},
		{name: "SAML", action: `"sts:AssumeRoleWithSAML"`, want: NotTrusted},
		{name: "other service", action: `"iam:*"`, want: NotTrusted},
		{name: "list with it", action: `["sts:TagSession", "sts:AssumeRoleWithWebIdentity"]`, want: Trusted},
		{name: "list without it", action: `["sts:TagSession", "sts:AssumeRole"]`, want: NotTrusted},
		{name: "NotAction of another action", action: `"sts:AssumeRole"`, not: true, want: Trusted},
		{name: "NotAction of it", action: `"sts:AssumeRoleWithWebIdentity"`, not: true, want: NotTrusted},
		{name: "NotAction of it, other case", action: `"STS:ASSUMEROLEWITHWEBIDENTITY"`, not: true, want: NotTrusted},
		{name: "NotAction sts:*", action: `"sts:*"`, not: true, want: NotTrusted},
		{name: "NotAction list without it", action: `["iam:*", "sts:AssumeRoleWithSAML"]`, not: true, want: Trusted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			element := "Action"
			if tc.not {
				element = "NotAction"
			}
			doc := fill(`{"Statement":{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"` + element + `":` + tc.action + `,
				"Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}}}`)
			checkVerdict(t, Evaluate(mustParse(t, doc), testRequest()), tc.want, nil)
		})
	}
}

func TestEvaluatePrincipals(t *testing.T) {
	cond := `,"Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}`
	cases := []struct {
		name      string
		principal string // "Principal":... or "NotPrincipal":...
		req       func(*Request)
		want      Result
		findings  []wantFinding
	}{
		{name: "this provider", principal: `"Principal":{"Federated":"PROVIDER"}`, want: Trusted},
		{name: "list with this provider", principal: `"Principal":{"Federated":["OTHERPROVIDER","PROVIDER"]}`, want: Trusted},
		{name: "wildcard", principal: `"Principal":"*"`, want: Trusted, findings: []wantFinding{warningFinding(`principal "*" trusts every identity`)}},
		{name: "AWS wildcard", principal: `"Principal":{"AWS":"*"}`, want: Trusted, findings: []wantFinding{warningFinding(`principal "*" trusts every identity`)}},
		{name: "another cluster", principal: `"Principal":{"Federated":"OTHERPROVIDER"}`, want: NotTrusted},
		{name: "account root", principal: `"Principal":{"AWS":"arn:aws:iam::111122223333:root"}`, want: NotTrusted,
			findings: []wantFinding{errorFinding(`principal {"AWS": "arn:aws:iam::111122223333:root"} is not this cluster's provider`)}},
		{name: "service", principal: `"Principal":{"Service":"ec2.amazonaws.com"}`, want: NotTrusted},
		{name: "another identity provider", principal: `"Principal":{"Federated":"accounts.google.com"}`, want: NotTrusted},
		{name: "other partition", principal: `"Principal":{"Federated":"arn:aws-cn:iam::111122223333:oidc-provider/ISSUER"}`, want: NotTrusted},
		{name: "role in another partition", principal: `"Principal":{"Federated":"arn:aws-us-gov:iam::111122223333:oidc-provider/ISSUER"}`,
			req: func(r *Request) { r.RoleARN = "arn:aws-us-gov:iam::111122223333:role/s3-writer" }, want: Trusted},
		{name: "role with a path", principal: `"Principal":{"Federated":"PROVIDER"}`,
			req: func(r *Request) { r.RoleARN = "arn:aws:iam::111122223333:role/team/storage/s3-writer" }, want: Trusted},
		{name: "differs only in case", principal: `"Principal":{"Federated":"arn:aws:iam::111122223333:oidc-provider/` + strings.ToLower(testIssuer) + `"}`, want: Undetermined,
			findings: []wantFinding{warningFinding("only in letter case")}},
		{name: "differs by a trailing slash", principal: `"Principal":{"Federated":"PROVIDER/"}`, want: Undetermined,
			findings: []wantFinding{warningFinding("or a trailing slash")}},
		{name: "federated wildcard", principal: `"Principal":{"Federated":"*"}`, want: Undetermined,
			findings: []wantFinding{warningFinding(`{"Federated": "*"}`)}},
		// IAM refuses NotPrincipal in an Allow statement (TestEvaluateInvalidPolicies).
		{name: "NotPrincipal of another provider", principal: `"NotPrincipal":{"Federated":"OTHERPROVIDER"}`, want: NotTrusted,
			findings: []wantFinding{errorFinding(`NotPrincipal with Effect "Allow" is not valid`)}},
		{name: "NotPrincipal of this provider", principal: `"NotPrincipal":{"Federated":"PROVIDER"}`, want: NotTrusted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			doc := fill(`{"Statement":[{"Effect":"Allow",` + tc.principal + `,"Action":"sts:AssumeRoleWithWebIdentity"` + cond + `}]}`)
			checkVerdict(t, Evaluate(mustParse(t, doc), r), tc.want, tc.findings)
		})
	}
}

func TestEvaluateCrossAccountProvider(t *testing.T) {
	const elsewhere = "arn:aws:iam::444455556666:oidc-provider/" + testIssuer
	cond := `,"Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer"}}`
	stmt := func(principal string) string {
		return `{"Effect":"Allow","Principal":{"Federated":` + principal + `},"Action":"sts:AssumeRoleWithWebIdentity"` + cond + `}`
	}
	crossAccount := "STS only honours an OIDC provider registered in the role's own account"
	cases := []struct {
		name     string
		doc      string
		want     Result
		findings []wantFinding
	}{
		{name: "only the other account's provider", doc: `{"Statement":[` + stmt(`"`+elsewhere+`"`) + `]}`, want: NotTrusted,
			findings: []wantFinding{errorFinding(`statement 0: principal "` + elsewhere + `" is this cluster's issuer registered as an OIDC provider in account 444455556666, but the role is in account 111122223333: ` + crossAccount)}},
		{name: "both providers in one statement", doc: `{"Statement":[` + stmt(`["`+elsewhere+`","PROVIDER"]`) + `]}`, want: Trusted,
			findings: []wantFinding{warningFinding(crossAccount)}},
		{name: "next to an undecidable statement", doc: `{"Statement":[` + stmt(`"`+elsewhere+`"`) + `,{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`,
			want: Undetermined, findings: []wantFinding{warningFinding(crossAccount)}},
		{name: "separate statements", doc: `{"Statement":[` + stmt(`"`+elsewhere+`"`) + `,` + stmt(`"PROVIDER"`) + `]}`, want: Trusted,
			findings: []wantFinding{warningFinding("statement 0: principal \"" + elsewhere + "\" is this cluster's issuer")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(mustParse(t, fill(tc.doc)), testRequest())
			checkVerdict(t, v, tc.want, tc.findings)
			if tc.want == NotTrusted {
				for _, f := range v.Findings {
					if strings.Contains(f.Message, "is not this cluster's provider") {
						t.Errorf("cross-account principal also reported as a plain mismatch: %s", f)
					}
				}
			}
		})
	}
}

func TestEvaluateUnknownKeys(t *testing.T) {
	sub := `"ISSUER:sub":"system:serviceaccount:production:s3-writer"`
	cases := []struct {
		name      string
		condition string
		want      Result
		findings  []wantFinding
	}{
		{name: "source IP", condition: `{"StringEquals":{` + sub + `},"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}`, want: Undetermined},
		{name: "principal tag", condition: `{"StringEquals":{` + sub + `,"aws:PrincipalTag/team":"storage"}}`, want: Undetermined,
			findings: []wantFinding{warningFinding(`statement 0: Allow statement cannot be decided: "aws:PrincipalTag/team" StringEquals "storage": the checker cannot know this key's value`)}},
		{name: "role session name", condition: `{"StringLike":{"sts:RoleSessionName":"botocore-*"},"StringEquals":{` + sub + `}}`, want: Undetermined},
		{name: "another provider's sub", condition: `{"StringEquals":{"OTHERISSUER:sub":"system:serviceaccount:production:s3-writer"}}`, want: Undetermined,
			findings: []wantFinding{warningFinding("belongs to another identity provider")}},
		{name: "key with the https scheme", condition: `{"StringEquals":{"https://ISSUER:sub":"system:serviceaccount:production:s3-writer"}}`, want: Undetermined,
			findings: []wantFinding{warningFinding("without https://")}},
		{name: "another claim of this provider", condition: `{"StringEquals":{` + sub + `,"ISSUER:amr":"authenticated"}}`, want: Undetermined,
			findings: []wantFinding{warningFinding("knows only the sub and aud claims")}},
		{name: "negated operator on an unknown key", condition: `{"StringNotEquals":{"aws:PrincipalTag/env":"dev"},"StringEquals":{` + sub + `}}`, want: Undetermined},
		{name: "unknown key, but sub fails", condition: `{"StringEquals":{"ISSUER:sub":"system:serviceaccount:staging:x","aws:PrincipalTag/team":"storage"}}`, want: NotTrusted,
			findings: []wantFinding{errorFinding(`sub StringEquals "system:serviceaccount:staging:x" does not match`)}},
		{name: "unknown operator, but sub fails", condition: `{"StringEquals":{"ISSUER:sub":"system:serviceaccount:staging:x"},"Bool":{"aws:SecureTransport":"true"}}`, want: NotTrusted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(mustParse(t, withCondition(fill(tc.condition))), testRequest())
			checkVerdict(t, v, tc.want, tc.findings)
		})
	}

	t.Run("unknown Allow next to a trusting Allow", func(t *testing.T) {
		doc := fill(`{"Statement":[
			{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
			{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{` + sub + `,"ISSUER:aud":"sts.amazonaws.com"}}}]}`)
		checkVerdict(t, Evaluate(mustParse(t, doc), testRequest()), Trusted, []wantFinding{infoFinding("statement 1: allows")})
	})
	t.Run("unknown Allow next to a failing Allow", func(t *testing.T) {
		doc := fill(`{"Statement":[
			{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
			{"Effect":"Allow","Principal":{"Federated":"PROVIDER"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"ISSUER:sub":"system:serviceaccount:a:b"}}}]}`)
		checkVerdict(t, Evaluate(mustParse(t, doc), testRequest()), Undetermined, []wantFinding{
			warningFinding("statement 0: Allow statement cannot be decided"),
			infoFinding(`statement 1: sub StringEquals "system:serviceaccount:a:b" does not match`),
		})
	})
}

func TestEvaluateBroadness(t *testing.T) {
	cases := []struct {
		name      string
		condition string
		findings  []wantFinding
	}{
		{name: "no conditions", condition: `{}`, findings: []wantFinding{
			warningFinding("no condition restricts " + testIssuer + ":sub"), warningFinding("no condition restricts " + testIssuer + ":aud")}},
		{name: "sub only negated", condition: `{"StringNotEquals":{"ISSUER:sub":"system:serviceaccount:kube-system:default"},"StringEquals":{"ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding("no condition restricts " + testIssuer + ":sub")}},
		{name: "any namespace", condition: `{"StringLike":{"ISSUER:sub":"system:serviceaccount:*:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding(`sub StringLike "system:serviceaccount:*:s3-writer" matches any namespace`)}},
		{name: "any name", condition: `{"StringLike":{"ISSUER:sub":"system:serviceaccount:production:*","ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding("matches any service account name in the namespace")}},
		{name: "namespace prefix", condition: `{"StringLike":{"ISSUER:sub":"system:serviceaccount:prod*:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding("matches any namespace")}},
		{name: "everything after the prefix", condition: `{"StringLike":{"ISSUER:sub":"system:serviceaccount:*","ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding("matches any namespace and any service account name")}},
		{name: "everything", condition: `{"StringLike":{"ISSUER:sub":"*","ISSUER:aud":"sts.amazonaws.com"}}`,
			findings: []wantFinding{warningFinding("matches any subject")}},
		{name: "no aud", condition: `{"StringEquals":{"ISSUER:sub":"system:serviceaccount:production:s3-writer"}}`,
			findings: []wantFinding{warningFinding("no condition restricts " + testIssuer + ":aud")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkVerdict(t, Evaluate(mustParse(t, withCondition(fill(tc.condition))), testRequest()), Trusted, tc.findings)
		})
	}
	t.Run("exact StringLike is not broad", func(t *testing.T) {
		doc := withCondition(fill(`{"StringLike":{"ISSUER:sub":"system:serviceaccount:production:s3-writer","ISSUER:aud":"sts.amazonaws.com"}}`))
		if v := Evaluate(mustParse(t, doc), testRequest()); hasSeverity(v, Warning) || v.Result != Trusted {
			t.Errorf("got %v with warnings:\n%s", v.Result, dumpFindings(v))
		}
	})
}

func TestEvaluateBadRequest(t *testing.T) {
	p := mustParse(t, fill(eksDocsPolicy))
	cases := []struct {
		name   string
		policy *Policy
		req    func(*Request)
		want   []string
	}{
		{name: "bad role ARN", policy: p, req: func(r *Request) { r.RoleARN = "arn:aws:iam::123:role/x" }, want: []string{"has account \"123\""}},
		{name: "not a role", policy: p, req: func(r *Request) { r.RoleARN = "arn:aws:iam::111122223333:user/x" }, want: []string{"does not name a role"}},
		{name: "http issuer", policy: p, req: func(r *Request) { r.IssuerURL = "http://" + testIssuer }, want: []string{"must use https"}},
		{name: "empty issuer", policy: p, req: func(r *Request) { r.IssuerURL = "" }, want: []string{"issuer URL is empty"}},
		{name: "issuer without host", policy: p, req: func(r *Request) { r.IssuerURL = "https:///x" }, want: []string{"has no host"}},
		{name: "issuer with query", policy: p, req: func(r *Request) { r.IssuerURL = "https://example.com/?a" }, want: []string{"no spaces, query or fragment"}},
		{name: "everything wrong at once", policy: p, req: func(r *Request) { *r = Request{Namespace: "a:b"} },
			want: []string{"role ARN is empty", "issuer URL is empty", `namespace "a:b" contains ':'`, "service account name is empty"}},
		{name: "nil policy", policy: nil, want: []string{"no trust policy to evaluate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if tc.req != nil {
				tc.req(&r)
			}
			v := Evaluate(tc.policy, r)
			var findings []wantFinding
			for _, w := range tc.want {
				findings = append(findings, errorFinding(w))
			}
			checkVerdict(t, v, Undetermined, findings)
			if len(v.Findings) != len(tc.want) {
				t.Errorf("got %d findings, want %d:\n%s", len(v.Findings), len(tc.want), dumpFindings(v))
			}
		})
	}
}

func TestEvaluateEmptyPolicy(t *testing.T) {
	checkVerdict(t, Evaluate(&Policy{}, testRequest()), NotTrusted, []wantFinding{errorFinding("no statement has Effect Allow")})
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Trusted.String(), "Trusted"}, {NotTrusted.String(), "NotTrusted"}, {Undetermined.String(), "Undetermined"}, {Result(9).String(), "Undetermined"},
		{Info.String(), "info"}, {Warning.String(), "warning"}, {Error.String(), "error"},
		{Allow.String(), "Allow"}, {Deny.String(), "Deny"},
		{Finding{Severity: Warning, Message: "m"}.String(), "warning: m"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
