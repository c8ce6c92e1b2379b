package awsiam_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	smithy "github.com/aws/smithy-go"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

// fakeClient answers GetRole with a fixed output or error.
type fakeClient struct {
	out *iam.GetRoleOutput
	err error
}

func (f fakeClient) GetRole(context.Context, *iam.GetRoleInput, ...func(*iam.Options)) (*iam.GetRoleOutput, error) {
	return f.out, f.err
}

func TestTrustPolicyClassifiesClientErrors(t *testing.T) {
	arn := roleARN("app")
	tests := []struct {
		name      string
		client    fakeClient
		wantClass error
		wantText  string
	}{
		{name: "typed NoSuchEntity", client: fakeClient{err: &types.NoSuchEntityException{Message: aws.String("gone")}}, wantClass: awsiam.ErrNotFound, wantText: `get role "` + arn + `": role does not exist: NoSuchEntity: gone`},
		{name: "AccessDeniedException", client: fakeClient{err: &smithy.GenericAPIError{Code: "AccessDeniedException"}}, wantClass: awsiam.ErrAccessDenied, wantText: "iam:GetRole on " + arn},
		{name: "expired token", client: fakeClient{err: &smithy.GenericAPIError{Code: "ExpiredToken"}}, wantClass: awsiam.ErrAccessDenied, wantText: "rejected the webhook's AWS credentials"},
		{name: "ThrottlingException", client: fakeClient{err: &smithy.GenericAPIError{Code: "ThrottlingException"}}, wantClass: awsiam.ErrThrottled},
		{name: "RequestLimitExceeded", client: fakeClient{err: &smithy.GenericAPIError{Code: "RequestLimitExceeded"}}, wantClass: awsiam.ErrThrottled},
		{name: "typed ServiceFailure", client: fakeClient{err: &types.ServiceFailureException{}}, wantClass: awsiam.ErrUnavailable},
		{name: "unexpected API error", client: fakeClient{err: &smithy.GenericAPIError{Code: "ValidationError"}}, wantClass: awsiam.ErrUnavailable},
		{name: "deadline", client: fakeClient{err: fmt.Errorf("send: %w", context.DeadlineExceeded)}, wantClass: awsiam.ErrUnavailable, wantText: "no answer in time: context deadline exceeded"},
		{name: "credentials missing", client: fakeClient{err: errors.New("failed to refresh cached credentials")}, wantClass: awsiam.ErrUnavailable, wantText: "failed to refresh cached credentials"},
		{name: "no role in answer", client: fakeClient{out: &iam.GetRoleOutput{}}, wantClass: awsiam.ErrUnavailable, wantText: "no role"},
		{name: "no trust policy in answer", client: fakeClient{out: &iam.GetRoleOutput{Role: &types.Role{Arn: aws.String(arn)}}}, wantClass: awsiam.ErrUnavailable, wantText: "no trust policy"},
		{name: "bad percent-encoding", client: fakeClient{out: &iam.GetRoleOutput{Role: &types.Role{Arn: aws.String(arn), AssumeRolePolicyDocument: aws.String("%7")}}}, wantClass: awsiam.ErrUnavailable, wantText: "decode the trust policy"},
		{name: "role name differs only in case", client: fakeClient{out: &iam.GetRoleOutput{Role: &types.Role{Arn: aws.String(roleARN("App")), AssumeRolePolicyDocument: aws.String("%7B%7D")}}}},
		{name: "other partition", client: fakeClient{out: &iam.GetRoleOutput{Role: &types.Role{Arn: aws.String("arn:aws-cn:iam::" + account + ":role/app"), AssumeRolePolicyDocument: aws.String("%7B%7D")}}}, wantClass: awsiam.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, awsiam.Options{Client: tt.client})
			_, err := src.TrustPolicy(context.Background(), arn)
			if tt.wantClass == nil {
				if err != nil {
					t.Fatalf("TrustPolicy: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantClass) {
				t.Fatalf("TrustPolicy error = %v, want class %v", err, tt.wantClass)
			}
			for _, other := range []error{awsiam.ErrNotFound, awsiam.ErrAccessDenied, awsiam.ErrThrottled, awsiam.ErrUnavailable, awsiam.ErrInvalidARN} {
				if !errors.Is(other, tt.wantClass) && errors.Is(err, other) {
					t.Errorf("TrustPolicy error %v is also %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("TrustPolicy error %q does not contain %q", err, tt.wantText)
			}
			if tt.client.err != nil && !errors.Is(err, tt.client.err) {
				t.Errorf("TrustPolicy error %v does not wrap the client's %v", err, tt.client.err)
			}
		})
	}
}
