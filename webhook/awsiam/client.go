// Package awsiam provides role trust policies for the ServiceAccount trust check: Source
// reads them from IAM (GetRole, cached, one call per role at a time, errors in classes)
// and DirSource from a directory of files for offline use.
package awsiam

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// DefaultRegion is used when neither the caller nor the AWS configuration names a region.
// IAM is global; in the aws partition its endpoint and signing region are us-east-1.
const DefaultRegion = "us-east-1"

// Retry policy of the IAM client: one retry at most, after a short pause, so a lookup
// fits its CallTimeout. Callers cache failures, so retrying harder here buys little.
const (
	MaxAttempts = 2
	MaxBackoff  = 300 * time.Millisecond
)

// NewClient builds an IAM client from the default AWS configuration: the default
// credential chain (environment, shared files, web identity / IRSA, container and EC2
// roles), and AWS_ENDPOINT_URL_IAM / AWS_ENDPOINT_URL / the shared config's endpoint
// settings, which this SDK version resolves itself (iam.NewFromConfig reads them). region
// may be empty: then AWS_REGION / the profile's region, else DefaultRegion. optFns are
// applied after NewClient's own (tests use them for static credentials and an endpoint).
func NewClient(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (*iam.Client, error) {
	cfg, err := LoadConfig(ctx, region, optFns...)
	if err != nil {
		return nil, err
	}
	return NewIAMClient(cfg), nil
}

// NewIAMClient returns the IAM client for a configuration from LoadConfig.
func NewIAMClient(cfg aws.Config) *iam.Client { return iam.NewFromConfig(cfg) }

// LoadConfig loads the AWS configuration NewClient uses, for the IAM and STS clients alike.
func LoadConfig(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(newRetryer),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	opts = append(opts, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration for IAM: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return cfg, nil
}

// CallerAccount asks STS which AWS account the configuration's credentials belong to
// (GetCallerIdentity needs no permission). GetRole only sees roles of that account, so the
// Source needs it to tell "the role does not exist" from "the role is elsewhere".
func CallerAccount(ctx context.Context, cfg aws.Config) (string, error) {
	id, err := CallerIdentity(ctx, cfg)
	return id.ID, err
}

// CallerIdentity asks STS for the partition and account of the configuration's credentials
// (GetCallerIdentity): what --compose-role-arn completes role names with. The partition is
// that of the caller's ARN (arn:<partition>:sts::...), so it is right in every partition
// without a table of regions.
func CallerIdentity(ctx context.Context, cfg aws.Config) (irsa.Account, error) {
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return irsa.Account{}, fmt.Errorf("get caller identity: %w", err)
	}
	return identityOf(aws.ToString(out.Arn), aws.ToString(out.Account))
}

// identityOf checks GetCallerIdentity's answer: a 12-digit account and an ARN in a valid partition.
func identityOf(arn, account string) (irsa.Account, error) {
	parts := strings.SplitN(arn, ":", 3)
	if len(parts) < 3 || parts[0] != "arn" {
		return irsa.Account{}, fmt.Errorf("get caller identity: the answer's ARN %q is not an ARN", arn)
	}
	a := irsa.Account{Partition: parts[1], ID: account}
	// The account and partition must make a role ARN that parses: checked once here.
	if _, err := irsa.ParseRoleARN(irsa.ComposeRoleARN("x", a)); err != nil {
		return irsa.Account{}, fmt.Errorf("get caller identity: partition %q or account %q unusable: %w", a.Partition, a.ID, err)
	}
	return a, nil
}

// newRetryer is the SDK's standard retryer with MaxAttempts and MaxBackoff, and without
// the client-side retry quota: concurrency is already bounded by the Source, and a
// drained quota would turn throttling into opaque quota errors.
func newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = MaxAttempts
		o.MaxBackoff = MaxBackoff
		o.RateLimiter = ratelimit.None
	})
}
