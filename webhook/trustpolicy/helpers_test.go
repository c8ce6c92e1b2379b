package trustpolicy

import (
	"strings"
	"testing"
)

// The cluster, role and service account most tests check. Account IDs and the issuer ID
// are the documentation placeholders AWS uses.
const (
	testIssuer   = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
	testAccount  = "111122223333"
	testRoleARN  = "arn:aws:iam::" + testAccount + ":role/s3-writer"
	testProvider = "arn:aws:iam::" + testAccount + ":oidc-provider/" + testIssuer
	testSubject  = "system:serviceaccount:production:s3-writer"
	testAudience = "sts.amazonaws.com"

	otherIssuer   = "oidc.eks.eu-west-1.amazonaws.com/id/0THERC1USTER0000000000000000000"
	otherProvider = "arn:aws:iam::" + testAccount + ":oidc-provider/" + otherIssuer
)

func testRequest() Request {
	return Request{
		RoleARN:        testRoleARN,
		IssuerURL:      "https://" + testIssuer,
		Namespace:      "production",
		ServiceAccount: "s3-writer",
		Audience:       testAudience,
	}
}

// fill replaces the placeholders ISSUER, PROVIDER, OTHERISSUER and OTHERPROVIDER in a
// policy template.
func fill(doc string) string {
	return strings.NewReplacer(
		"OTHERPROVIDER", otherProvider,
		"OTHERISSUER", otherIssuer,
		"PROVIDER", testProvider,
		"ISSUER", testIssuer,
	).Replace(doc)
}

// withCondition is a policy with one Allow statement for this cluster's provider and the
// given Condition element (raw JSON).
func withCondition(condition string) string {
	return fill(`{"Version": "2012-10-17", "Statement": [{
		"Effect": "Allow",
		"Principal": {"Federated": "PROVIDER"},
		"Action": "sts:AssumeRoleWithWebIdentity",
		"Condition": ` + condition + `}]}`)
}

func mustParse(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		t.Fatalf("Parse: %v\ndocument:\n%s", err, doc)
	}
	return p
}

// wantFinding is a finding a test expects: its severity and a substring of its message.
type wantFinding struct {
	sev  Severity
	text string
}

func errorFinding(text string) wantFinding   { return wantFinding{Error, text} }
func warningFinding(text string) wantFinding { return wantFinding{Warning, text} }
func infoFinding(text string) wantFinding    { return wantFinding{Info, text} }

// checkVerdict checks the result, that every wanted finding is there, and the invariants
// every verdict keeps: a NotTrusted verdict says why with at least one Error finding.
func checkVerdict(t *testing.T, v Verdict, want Result, findings []wantFinding) {
	t.Helper()
	if v.Result != want {
		t.Errorf("Result = %v, want %v; findings:\n%s", v.Result, want, dumpFindings(v))
	}
	for _, w := range findings {
		found := false
		for _, f := range v.Findings {
			if f.Severity == w.sev && strings.Contains(f.Message, w.text) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %v finding containing %q; findings:\n%s", w.sev, w.text, dumpFindings(v))
		}
	}
	if v.Result == NotTrusted && !hasSeverity(v, Error) {
		t.Errorf("NotTrusted without an Error finding saying why:\n%s", dumpFindings(v))
	}
}

func hasSeverity(v Verdict, s Severity) bool {
	for _, f := range v.Findings {
		if f.Severity == s {
			return true
		}
	}
	return false
}

func dumpFindings(v Verdict) string {
	var b strings.Builder
	for _, f := range v.Findings {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}
