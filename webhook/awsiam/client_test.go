package awsiam_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

func TestNewClientEndpointFromEnvironment(t *testing.T) {
	const deadURL = "http://127.0.0.1:1" // nothing listens on port 1
	tests := []struct {
		name       string
		env        map[string]string // "SERVER" is replaced by the iamserver URL
		region     string
		wantRegion string // credential scope region of the signed request
	}{
		{
			name:       "AWS_ENDPOINT_URL_IAM, no region anywhere",
			env:        map[string]string{"AWS_ENDPOINT_URL_IAM": "SERVER"},
			wantRegion: awsiam.DefaultRegion,
		},
		{
			name:       "AWS_ENDPOINT_URL",
			env:        map[string]string{"AWS_ENDPOINT_URL": "SERVER"},
			wantRegion: awsiam.DefaultRegion,
		},
		{
			name:       "AWS_ENDPOINT_URL_IAM wins over AWS_ENDPOINT_URL",
			env:        map[string]string{"AWS_ENDPOINT_URL": deadURL, "AWS_ENDPOINT_URL_IAM": "SERVER"},
			wantRegion: awsiam.DefaultRegion,
		},
		{
			name:       "region from AWS_REGION",
			env:        map[string]string{"AWS_ENDPOINT_URL_IAM": "SERVER", "AWS_REGION": "eu-west-1"},
			wantRegion: "eu-west-1",
		},
		{
			name:       "region argument",
			env:        map[string]string{"AWS_ENDPOINT_URL_IAM": "SERVER"},
			region:     "us-west-2",
			wantRegion: "us-west-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAWSEnv(t)
			srv := iamserver.New()
			t.Cleanup(srv.Close)
			srv.PutRole(roleARN("app"), "{}")
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
			for k, v := range tt.env {
				t.Setenv(k, strings.ReplaceAll(v, "SERVER", srv.URL()))
			}
			c, err := awsiam.NewClient(context.Background(), tt.region)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			out, err := c.GetRole(context.Background(), &iam.GetRoleInput{RoleName: aws.String("app")})
			if err != nil {
				t.Fatalf("GetRole: %v", err)
			}
			if got := aws.ToString(out.Role.Arn); got != roleARN("app") {
				t.Errorf("GetRole Arn = %q, want %q", got, roleARN("app"))
			}
			if got := srv.Calls("app"); got != 1 {
				t.Errorf("server saw %d GetRole calls, want 1", got)
			}
			if authz, want := srv.LastAuthorization(), "/"+tt.wantRegion+"/iam/aws4_request"; !strings.Contains(authz, want) {
				t.Errorf("Authorization %q not scoped to %q", authz, want)
			}
		})
	}
}

// localSTSConfig is an AWS config signing for a local IAM/STS endpoint, with no AWS
// setting of the machine's environment in effect.
func localSTSConfig(t *testing.T) aws.Config {
	t.Helper()
	isolateAWSEnv(t)
	srv := iamserver.New()
	t.Cleanup(srv.Close)
	cfg, err := awsiam.LoadConfig(context.Background(), "us-east-1",
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		config.WithBaseEndpoint(srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCallerAccount(t *testing.T) {
	cfg := localSTSConfig(t)
	got, err := awsiam.CallerAccount(context.Background(), cfg)
	if err != nil || got != iamserver.CallerAccount {
		t.Fatalf("CallerAccount = %q, %v; want %q", got, err, iamserver.CallerAccount)
	}
}

// TestCallerIdentity: --compose-role-arn's partition and account, from the local STS
// (GetCallerIdentity, SigV4 signed).
func TestCallerIdentity(t *testing.T) {
	cfg := localSTSConfig(t)
	got, err := awsiam.CallerIdentity(context.Background(), cfg)
	if want := (irsa.Account{Partition: "aws", ID: iamserver.CallerAccount}); err != nil || got != want {
		t.Fatalf("CallerIdentity = %+v, %v; want %+v", got, err, want)
	}
	// A wrong secret: STS refuses the signature, and the error says what was attempted.
	bad := cfg.Copy()
	bad.Credentials = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wrong", "")
	if _, err := awsiam.CallerIdentity(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "get caller identity") {
		t.Fatalf("wrong secret: err = %v, want a get caller identity error", err)
	}
}
