package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// trustOptions configure the trust check, for serve and the trust commands.
type trustOptions struct {
	mode           serviceaccount.Mode
	failClosed     bool
	timeout        time.Duration
	issuerURL      string
	policyDir      string
	cacheTTL       time.Duration
	negativeTTL    time.Duration
	maxConcurrency int
	rateLimit      float64
	rateBurst      int
}

// Bounds of --iam-rate-limit and --iam-rate-burst: IAM's own quotas are far lower.
const (
	maxRateLimit = 1000
	maxRateBurst = 10000
)

// startupTimeout bounds each start-up call (issuer discovery, the STS caller identity).
const startupTimeout = 10 * time.Second

func newTrustOptions() trustOptions {
	return trustOptions{
		mode:           serviceaccount.Warn,
		timeout:        serviceaccount.DefaultTimeout,
		cacheTTL:       awsiam.DefaultTTL,
		negativeTTL:    awsiam.DefaultNegativeTTL,
		maxConcurrency: awsiam.DefaultMaxConcurrency,
		rateLimit:      awsiam.DefaultRateLimit,
		rateBurst:      awsiam.DefaultRateBurst,
	}
}

func (t *trustOptions) addFlags(fs *flag.FlagSet) {
	fs.Func("trust-check", "ServiceAccount trust-policy check: off, warn (default: allow with a warning) or enforce (deny a role that does not trust the ServiceAccount)", func(v string) error {
		t.mode = serviceaccount.Mode(v)
		return nil
	})
	fs.BoolVar(&t.failClosed, "trust-check-fail-closed", t.failClosed, "enforce mode: also deny when the trust cannot be verified (IAM down, throttled, access denied)")
	fs.DurationVar(&t.timeout, "trust-check-timeout", t.timeout, "deadline of one trust check; keep it below the webhook's timeoutSeconds")
	fs.StringVar(&t.issuerURL, "oidc-issuer-url", t.issuerURL, "this cluster's service-account issuer; empty discovers it from the API server")
	fs.StringVar(&t.policyDir, "trust-policy-dir", t.policyDir, "read trust policies from DIR/<role-name>.json instead of IAM (offline, GitOps CI)")
	fs.DurationVar(&t.cacheTTL, "iam-cache-ttl", t.cacheTTL, "how long a role's trust policy fetched from IAM is reused")
	fs.DurationVar(&t.negativeTTL, "iam-negative-cache-ttl", t.negativeTTL, "how long 'role does not exist' and IAM errors are reused (throttling and outages at most 10s)")
	fs.IntVar(&t.maxConcurrency, "iam-max-concurrency", t.maxConcurrency, "concurrent IAM GetRole calls at most")
	fs.Float64Var(&t.rateLimit, "iam-rate-limit", t.rateLimit, "IAM GetRole calls per second at most, sustained; a check past the limit is 'not verified (rate limited)'")
	fs.IntVar(&t.rateBurst, "iam-rate-burst", t.rateBurst, "IAM GetRole calls allowed at once after a quiet spell, above --iam-rate-limit")
}

func (t *trustOptions) validate() []error {
	var errs []error
	if !slices.Contains(serviceaccount.Modes, t.mode) {
		errs = append(errs, fmt.Errorf("--trust-check %q must be off, warn or enforce", t.mode))
	}
	if t.timeout <= 0 || t.timeout > 25*time.Second {
		errs = append(errs, fmt.Errorf("--trust-check-timeout %s must be within (0, 25s]", t.timeout))
	}
	if t.issuerURL != "" {
		if err := serviceaccount.ValidIssuer(t.issuerURL); err != nil {
			errs = append(errs, fmt.Errorf("--oidc-issuer-url: %w", err))
		}
	}
	if t.policyDir != "" {
		if st, err := os.Stat(t.policyDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--trust-policy-dir %q is not a readable directory", t.policyDir))
		}
	}
	if t.cacheTTL <= 0 || t.negativeTTL <= 0 {
		errs = append(errs, fmt.Errorf("--iam-cache-ttl and --iam-negative-cache-ttl must be positive"))
	}
	if t.maxConcurrency < 1 || t.maxConcurrency > 100 {
		errs = append(errs, fmt.Errorf("--iam-max-concurrency %d must be within 1-100", t.maxConcurrency))
	}
	if !(t.rateLimit > 0 && t.rateLimit <= maxRateLimit) {
		errs = append(errs, fmt.Errorf("--iam-rate-limit %g must be within (0, %d]", t.rateLimit, maxRateLimit))
	}
	if t.rateBurst < 1 || t.rateBurst > maxRateBurst {
		errs = append(errs, fmt.Errorf("--iam-rate-burst %d must be within 1-%d", t.rateBurst, maxRateBurst))
	}
	return errs
}

// source builds the trust-policy source: the directory if given, else IAM. The webhook's
// own AWS account is asked from STS (GetRole only sees that account); if that fails, a
// missing role is reported as unverified rather than as not trusted.
func (t *trustOptions) source(ctx context.Context, log logr.Logger) (serviceaccount.TrustSource, error) {
	if t.policyDir != "" {
		return awsiam.NewDirSource(t.policyDir), nil
	}
	cfg, err := awsiam.LoadConfig(ctx, "")
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, startupTimeout)
	account, err := awsiam.CallerAccount(actx, cfg)
	cancel()
	if err != nil {
		log.Error(err, "cannot tell the webhook's AWS account; a role IAM cannot find will be reported as unverified, not as missing")
	}
	return awsiam.New(ctx, awsiam.Options{
		Client:         awsiam.NewIAMClient(cfg),
		TTL:            t.cacheTTL,
		NegativeTTL:    t.negativeTTL,
		MaxConcurrency: t.maxConcurrency,
		RateLimit:      t.rateLimit,
		RateBurst:      t.rateBurst,
		AccountID:      account,
	})
}

// issuer returns the configured issuer, else the one the API server publishes.
func (t *trustOptions) issuer(ctx context.Context, cfg *rest.Config) (string, error) {
	if t.issuerURL != "" {
		return t.issuerURL, nil
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("create client: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	return serviceaccount.DiscoverIssuer(ictx, cs.Discovery().RESTClient())
}

func (t *trustOptions) handler(ctx context.Context, cfg *rest.Config, d irsa.Defaults, m *admission.Metrics, log logr.Logger) (*serviceaccount.Handler, error) {
	src, err := t.source(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("trust check: %w", err)
	}
	issuer, err := t.issuer(ctx, cfg)
	if err != nil {
		// Not fatal: pods must still get credentials. Every check says why it is unverified.
		log.Error(err, "cannot discover the cluster's OIDC issuer; trust checks will be unverified until --oidc-issuer-url is set")
	}
	log.Info("trust check enabled", "mode", string(t.mode), "issuer", issuer, "policyDir", t.policyDir)
	return &serviceaccount.Handler{
		Mode: t.mode, FailClosed: t.failClosed, Timeout: t.timeout, IssuerURL: issuer,
		Defaults: d, Source: src, Metrics: m, Log: log,
	}, nil
}
