package iamserver_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

// TestSimulatePrincipalPolicy drives the simulator through aws-sdk-go-v2, so the answer is
// what the SDK's own deserializer reads.
func TestSimulatePrincipalPolicy(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	const roleARN = "arn:aws:iam::123456789012:role/S3WriterRole"
	srv.PutRole(roleARN, `{"Version":"2012-10-17","Statement":[]}`)
	srv.PutRolePolicy("S3WriterRole", "uploads", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["s3:Put*","s3:GetObject"],"Resource":"arn:aws:s3:::my-app-uploads/*"},
		{"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::my-app-uploads/secret/*"},
		{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}]}`)
	srv.PutRolePolicy("S3WriterRole", "list", `{"Statement":{"Effect":"Allow","NotAction":"s3:Delete*","Resource":"arn:aws:s3:::my-app-uploads"}}`)
	c := newIAMClient(srv, iamserver.DefaultAccessKeyID)
	tests := []struct {
		name, action, resource, want string
	}{
		{"allowed by a wildcard action", "s3:PutObject", "arn:aws:s3:::my-app-uploads/a/b.txt", iamserver.DecisionAllowed},
		{"action names ignore case", "S3:putobject", "arn:aws:s3:::my-app-uploads/x", iamserver.DecisionAllowed},
		{"explicit deny wins", "s3:PutObject", "arn:aws:s3:::my-app-uploads/secret/k", iamserver.DecisionExplicitDeny},
		{"other bucket", "s3:PutObject", "arn:aws:s3:::other-bucket/x", iamserver.DecisionImplicitDeny},
		{"resources are case-sensitive", "s3:GetObject", "arn:aws:s3:::MY-APP-UPLOADS/x", iamserver.DecisionImplicitDeny},
		{"a condition without context never matches", "s3:DeleteObject", "arn:aws:s3:::my-app-uploads/x", iamserver.DecisionImplicitDeny},
		{"NotAction", "s3:ListBucket", "arn:aws:s3:::my-app-uploads", iamserver.DecisionAllowed},
		{"NotAction excludes", "s3:DeleteBucket", "arn:aws:s3:::my-app-uploads", iamserver.DecisionImplicitDeny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{
				PolicySourceArn: aws.String(roleARN), ActionNames: []string{tc.action}, ResourceArns: []string{tc.resource},
			})
			if err != nil {
				t.Fatalf("SimulatePrincipalPolicy: %v", err)
			}
			if len(out.EvaluationResults) != 1 {
				t.Fatalf("got %d results, want 1", len(out.EvaluationResults))
			}
			r := out.EvaluationResults[0]
			if string(r.EvalDecision) != tc.want || aws.ToString(r.EvalActionName) != tc.action || aws.ToString(r.EvalResourceName) != tc.resource {
				t.Errorf("got %s for %s on %s, want %s", r.EvalDecision, aws.ToString(r.EvalActionName), aws.ToString(r.EvalResourceName), tc.want)
			}
			if tc.want != iamserver.DecisionImplicitDeny && len(r.MatchedStatements) == 0 {
				t.Errorf("no matched statements for %s", tc.want)
			}
		})
	}
	t.Run("unknown role", func(t *testing.T) {
		_, err := c.SimulatePrincipalPolicy(t.Context(), &iam.SimulatePrincipalPolicyInput{
			PolicySourceArn: aws.String("arn:aws:iam::123456789012:role/Nope"), ActionNames: []string{"s3:PutObject"},
		})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != iamserver.CodeNoSuchEntity {
			t.Fatalf("got %v, want NoSuchEntity", err)
		}
	})
}
