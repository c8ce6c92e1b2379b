package iamserver_test

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

func newIAMClient(srv *iamserver.Server, accessKeyID string) *iam.Client {
	return iam.New(iam.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(accessKeyID, "secret", ""),
	})
}

// TestOpenIDConnectProviders drives the provider actions through aws-sdk-go-v2's IAM client,
// which fails on any answer whose XML does not match IAM's shapes.
func TestOpenIDConnectProviders(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	c := newIAMClient(srv, iamserver.DefaultAccessKeyID)
	ctx := t.Context()
	const issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
	wantARN := "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

	created, err := c.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuer), ClientIDList: []string{"sts.amazonaws.com", "sts.amazonaws.com"},
		ThumbprintList: []string{strings.Repeat("9e", 20)},
	})
	if err != nil {
		t.Fatalf("CreateOpenIDConnectProvider: %v", err)
	}
	if got := aws.ToString(created.OpenIDConnectProviderArn); got != wantARN {
		t.Errorf("ARN %q, want %q", got, wantARN)
	}
	got, err := c.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(wantARN)})
	if err != nil {
		t.Fatalf("GetOpenIDConnectProvider: %v", err)
	}
	if aws.ToString(got.Url) != strings.TrimPrefix(issuer, "https://") || !slices.Equal(got.ClientIDList, []string{"sts.amazonaws.com"}) ||
		len(got.ThumbprintList) != 1 || got.CreateDate == nil {
		t.Errorf("provider = Url %q ClientIDList %q ThumbprintList %q CreateDate %v", aws.ToString(got.Url), got.ClientIDList, got.ThumbprintList, got.CreateDate)
	}
	srv.PutOIDCProvider(iamserver.CallerAccount, "https://a.example.test/", "aud")
	srv.PutOIDCProvider("210987654321", "https://other-account.example.test", "aud")
	list, err := c.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
	if err != nil {
		t.Fatalf("ListOpenIDConnectProviders: %v", err)
	}
	var arns []string
	for _, p := range list.OpenIDConnectProviderList {
		arns = append(arns, aws.ToString(p.Arn))
	}
	if want := []string{"arn:aws:iam::123456789012:oidc-provider/a.example.test", wantARN}; !slices.Equal(arns, want) {
		t.Errorf("listed %q, want %q (the caller's account only)", arns, want)
	}

	errTests := []struct {
		name       string
		call       func() error
		wantCode   string
		wantStatus int
		wantMsg    string
	}{
		{name: "create twice", call: func() error {
			_, err := c.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{Url: aws.String(issuer), ClientIDList: []string{"x"}})
			return err
		}, wantCode: "EntityAlreadyExists", wantStatus: 409, wantMsg: "already exists"},
		{name: "http URL", call: func() error {
			_, err := c.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{Url: aws.String("http://oidc.example.test")})
			return err
		}, wantCode: "InvalidInput", wantStatus: 400},
		{name: "thumbprint not hexadecimal", call: func() error {
			_, err := c.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{Url: aws.String("https://b.example.test"), ThumbprintList: []string{strings.Repeat("z", 40)}})
			return err
		}, wantCode: "ValidationError", wantStatus: 400, wantMsg: "thumbprintList"},
		{name: "get of another account's provider", call: func() error {
			_, err := c.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String("arn:aws:iam::210987654321:oidc-provider/other-account.example.test")})
			return err
		}, wantCode: "NoSuchEntity", wantStatus: 404},
		{name: "get with an invalid ARN", call: func() error {
			_, err := c.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String("arn:aws:iam::1:role/x")})
			return err
		}, wantCode: "InvalidInput", wantStatus: 400},
		{name: "delete, then get", call: func() error {
			if _, err := c.DeleteOpenIDConnectProvider(ctx, &iam.DeleteOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(wantARN)}); err != nil {
				return err
			}
			_, err := c.GetOpenIDConnectProvider(ctx, &iam.GetOpenIDConnectProviderInput{OpenIDConnectProviderArn: aws.String(wantARN)})
			return err
		}, wantCode: "NoSuchEntity", wantStatus: 404, wantMsg: "OpenIDConnect Provider not found for arn " + wantARN},
		{name: "injected throttling", call: func() error {
			srv.FailNext(1, iamserver.CodeThrottling)
			_, err := c.ListOpenIDConnectProviders(ctx, &iam.ListOpenIDConnectProvidersInput{})
			return err
		}, wantCode: "Throttling", wantStatus: 400},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			code, status := apiError(err)
			if code != tt.wantCode || status != tt.wantStatus || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v (code %q, status %d), want %s %d containing %q", err, code, status, tt.wantCode, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

// TestOpenIDConnectProviderBounds checks the per-account quota and the list bounds.
func TestOpenIDConnectProviderBounds(t *testing.T) {
	srv := iamserver.New()
	defer srv.Close()
	c := newIAMClient(srv, iamserver.DefaultAccessKeyID)
	for i := range 100 {
		srv.PutOIDCProvider(iamserver.CallerAccount, "https://p"+strconv.Itoa(i)+".example.test", "aud")
	}
	_, err := c.CreateOpenIDConnectProvider(t.Context(), &iam.CreateOpenIDConnectProviderInput{Url: aws.String("https://one-too-many.example.test")})
	if code, status := apiError(err); code != "LimitExceeded" || status != 409 {
		t.Errorf("101st provider: %v (%q %d), want LimitExceeded 409", err, code, status)
	}

	// A list far longer than IAM allows is refused after reading one entry past the bound.
	form := url.Values{"Action": {"CreateOpenIDConnectProvider"}, "Version": {iamserver.APIVersion}, "Url": {"https://long.example.test"}}
	for i := 1; i <= 2000; i++ {
		form.Set("ClientIDList.member."+strconv.Itoa(i), "a")
	}
	status, _, body := do(t, srv, request{method: http.MethodPost, form: form})
	if status != 400 || !strings.Contains(body, "ValidationError") || !strings.Contains(body, "clientIDList") {
		t.Errorf("2000 client IDs: status %d %s", status, body)
	}
}
