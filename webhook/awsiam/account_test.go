package awsiam_test

import (
	"context"
	"errors"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

// TestSetAccountID: the webhook learns its account after start (STS may be down then). Until
// then a missing role is "other account" (undetermined); once it is set, the cached answer
// is forgotten and the role is reported missing, and roles of other accounts cost no call.
func TestSetAccountID(t *testing.T) {
	srv, client := newIAM(t)
	s, err := awsiam.New(context.Background(), awsiam.Options{Client: client}) // account unknown
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const missing = "arn:aws:iam::123456789012:role/missing"
	if _, err := s.TrustPolicy(ctx, missing); !errors.Is(err, awsiam.ErrOtherAccount) {
		t.Fatalf("account unknown: err = %v, want ErrOtherAccount", err)
	}
	s.SetAccountID(testAccount)
	tests := []struct {
		name      string
		arn       string
		wantClass error
		wantCalls int
	}{
		{"missing role in the own account, cached as other account before", missing, awsiam.ErrNotFound, 1},
		{"other account: no call", "arn:aws:iam::210987654321:role/missing", awsiam.ErrOtherAccount, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			if _, err := s.TrustPolicy(ctx, tc.arn); !errors.Is(err, tc.wantClass) {
				t.Fatalf("err = %v, want class %v", err, tc.wantClass)
			}
			if got := srv.TotalCalls(); got != tc.wantCalls {
				t.Errorf("GetRole calls = %d, want %d", got, tc.wantCalls)
			}
		})
	}
}
