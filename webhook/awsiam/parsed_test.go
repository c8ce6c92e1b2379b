package awsiam_test

import (
	"context"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

// TestParsedTrustPolicyIsCached: the document is parsed once per fetch, and every lookup
// until the entry expires gets that parse; a document that does not parse is cached as
// such, with the document, and is not an error of the lookup.
func TestParsedTrustPolicyIsCached(t *testing.T) {
	const good = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"*"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`
	tests := []struct {
		name      string
		doc       string
		wantParse bool
	}{
		{"policy", good, true},
		{"not a policy", `{"Version":"2012-10-17"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, client := newIAM(t)
			arn := roleARN("parsed")
			srv.PutRole(arn, tc.doc)
			clk := newClock()
			src := newSource(t, awsiam.Options{Client: client, Now: clk.Now})
			ctx := context.Background()
			first, err := src.ParsedTrustPolicy(ctx, arn)
			if err != nil {
				t.Fatal(err)
			}
			if first.Document != tc.doc || (first.Parsed != nil) != tc.wantParse || (first.ParseErr == nil) != tc.wantParse {
				t.Fatalf("got %+v, want the document, parsed: %v", first, tc.wantParse)
			}
			clk.Advance(awsiam.DefaultTTL - time.Second)
			again, err := src.ParsedTrustPolicy(ctx, arn)
			if err != nil || again.Parsed != first.Parsed || again.Document != first.Document {
				t.Errorf("second lookup = %+v, %v; want the cached parse %p", again, err, first.Parsed)
			}
			if doc, err := src.TrustPolicy(ctx, arn); err != nil || doc != tc.doc {
				t.Errorf("TrustPolicy = %q, %v; want the document", doc, err)
			}
			if got := srv.Calls("parsed"); got != 1 {
				t.Errorf("%d GetRole calls, want 1", got)
			}
			clk.Advance(time.Second)
			fresh, err := src.ParsedTrustPolicy(ctx, arn)
			if err != nil || (tc.wantParse && fresh.Parsed == first.Parsed) || srv.Calls("parsed") != 2 {
				t.Errorf("after the TTL: %+v, %v, %d calls; want a new fetch and parse", fresh, err, srv.Calls("parsed"))
			}
		})
	}
}
