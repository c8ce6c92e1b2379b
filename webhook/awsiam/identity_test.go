package awsiam

import (
	"testing"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

func TestIdentityOf(t *testing.T) {
	tests := []struct {
		name, arn, account string
		want               irsa.Account
		wantErr            bool
	}{
		{name: "aws", arn: "arn:aws:sts::123456789012:assumed-role/r/s", account: "123456789012", want: irsa.Account{Partition: "aws", ID: "123456789012"}},
		{name: "aws-cn", arn: "arn:aws-cn:iam::123456789012:user/u", account: "123456789012", want: irsa.Account{Partition: "aws-cn", ID: "123456789012"}},
		{name: "aws-us-gov", arn: "arn:aws-us-gov:sts::123456789012:assumed-role/r/s", account: "123456789012", want: irsa.Account{Partition: "aws-us-gov", ID: "123456789012"}},
		{name: "no ARN", arn: "", account: "123456789012", wantErr: true},
		{name: "not an ARN", arn: "urn:aws:sts::1", account: "123456789012", wantErr: true},
		{name: "bad partition", arn: "arn:gcp:sts::123456789012:x", account: "123456789012", wantErr: true},
		{name: "bad account", arn: "arn:aws:sts::12:x", account: "12", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identityOf(tc.arn, tc.account)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("identityOf(%q, %q) = %+v, %v; want %+v, error %v", tc.arn, tc.account, got, err, tc.want, tc.wantErr)
			}
		})
	}
}
