package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// trustOptions configure the trust check, for serve and the trust commands.
type trustOptions struct {
	mode           serviceaccount.Mode
	failClosed     bool
	detailed       bool // warnings and Events quote the trust policy (single-tenant clusters)
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

// startupTimeout bounds the trust commands' start-up calls (issuer discovery, the STS caller
// identity); serve retries them (serviceaccount.LookupTimeout per attempt).
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

func (t *trustOptions) addFlags(fs *pflag.FlagSet) {
	fs.Func("trust-check", "ServiceAccount trust-policy check: off, warn (default: allow with a warning) or enforce (deny a role that does not trust the ServiceAccount)", func(v string) error {
		t.mode = serviceaccount.Mode(v)
		return nil
	})
	fs.BoolVar(&t.failClosed, "trust-check-fail-closed", t.failClosed, "enforce mode: also deny when the trust cannot be verified (IAM down, throttled, access denied)")
	fs.BoolVar(&t.detailed, "trust-check-detailed-warnings", t.detailed, "put the full findings, which quote the role's trust policy, in warnings and Events; only for single-tenant clusters: anyone who can create a ServiceAccount could read any role's trust policy (default: only the verdict and which of the ServiceAccount's own claims failed; the findings go to the debug log)")
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
		if _, err := trustpolicy.IssuerPath(t.issuerURL); err != nil {
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

// source builds the trust-policy source for the trust commands: the directory if given,
// else IAM. The webhook's own AWS account is asked from STS (GetRole only sees that
// account); if that fails, a missing role is reported as unverified rather than as not
// trusted.
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
	return t.iamSource(ctx, cfg, account)
}

// iamSource is the IAM trust-policy source; account is "" when unknown.
func (t *trustOptions) iamSource(ctx context.Context, cfg aws.Config, account string) (*awsiam.Source, error) {
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

// issuer returns the configured issuer, else the one the API server publishes (for the
// trust commands: one attempt).
func (t *trustOptions) issuer(ctx context.Context, cfg *rest.Config) (string, error) {
	if t.issuerURL != "" {
		return t.issuerURL, nil
	}
	discover, err := issuerDiscovery(cfg)
	if err != nil {
		return "", err
	}
	ictx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	return discover(ictx)
}

// issuerDiscovery returns a lookup of the issuer the API server publishes.
func issuerDiscovery(cfg *rest.Config) (func(context.Context) (string, error), error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	rc := cs.Discovery().RESTClient()
	return func(ctx context.Context) (string, error) { return serviceaccount.DiscoverIssuer(ctx, rc) }, nil
}

// handler builds serve's trust check. What it needs from outside (the cluster's issuer
// unless --oidc-issuer-url, the webhook's AWS account unless --trust-policy-dir) is looked
// up by deps, in the background and until it succeeds, once the manager runs them
// (addDependencies): an API server or STS that is down at start only delays the check, and
// says so, instead of leaving it unverified for the process's life. The account comes from
// ident's lookup, which --compose-role-arn shares; ident is nil only with --trust-policy-dir.
func (t *trustOptions) handler(ctx context.Context, cfg *rest.Config, ident *awsIdentity, d irsa.Defaults, m *serviceaccount.Metrics, deps *serviceaccount.Dependencies, log logr.Logger) (*serviceaccount.Handler, error) {
	var src serviceaccount.TrustSource = awsiam.NewDirSource(t.policyDir)
	if t.policyDir == "" {
		s, err := t.iamSource(ctx, ident.cfg, "")
		if err != nil {
			return nil, fmt.Errorf("trust check: %w", err)
		}
		ident.onKnown = append(ident.onKnown, func(a irsa.Account) { s.SetAccountID(a.ID) })
		src = s
	}
	var issuer *serviceaccount.Dependency
	if t.issuerURL != "" {
		issuer = deps.Known(serviceaccount.DependencyIssuer, t.issuerURL)
	} else {
		discover, err := issuerDiscovery(cfg)
		if err != nil {
			return nil, fmt.Errorf("trust check: %w", err)
		}
		issuer = deps.Lookup(serviceaccount.DependencyIssuer, discover, nil)
	}
	log.Info("trust check enabled", "mode", string(t.mode), "issuer", t.issuerURL, "policyDir", t.policyDir)
	return &serviceaccount.Handler{
		Mode: t.mode, FailClosed: t.failClosed, DetailedWarnings: t.detailed, Timeout: t.timeout, Issuer: issuer.Value,
		Defaults: d, Source: src, Metrics: m, Log: log,
	}, nil
}

// awsIdentity is the webhook's AWS configuration and the one lookup of its identity (STS
// GetCallerIdentity) that the trust check (its account) and --compose-role-arn (partition
// and account) share.
type awsIdentity struct {
	cfg     aws.Config
	onKnown []func(irsa.Account) // called once, in order, when the identity is known
}

// lookup adds the identity's lookup to deps (dependency aws_account), retried with its
// backoff until it succeeds. Call it once every user has added to onKnown.
func (a *awsIdentity) lookup(deps *serviceaccount.Dependencies) {
	var id irsa.Account // written and read on the lookup's goroutine only
	deps.Lookup(serviceaccount.DependencyAWSAccount, func(ctx context.Context) (string, error) {
		got, err := awsiam.CallerIdentity(ctx, a.cfg)
		if err != nil {
			return "", err
		}
		id = got
		return got.ID, nil
	}, func(string) {
		for _, f := range a.onKnown {
			f(id)
		}
	})
}

// addDependencies runs the dependencies' lookups with the manager and, in enforce mode,
// keeps the webhook unready until they succeed: a rollout then stalls on a replica that
// cannot enforce instead of replacing one that can.
func (t *trustOptions) addDependencies(mgr manager.Manager, deps *serviceaccount.Dependencies) error {
	if err := mgr.Add(deps); err != nil {
		return fmt.Errorf("add trust check dependencies: %w", err)
	}
	if t.mode == serviceaccount.Enforce {
		if err := mgr.AddReadyzCheck("trust-check-dependencies", deps.Check); err != nil {
			return fmt.Errorf("add trust check readiness: %w", err)
		}
	}
	return nil
}
