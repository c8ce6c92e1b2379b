package awsiam_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/awsiam"
)

const account = "123456789012"

func roleARN(pathAndName string) string { return "arn:aws:iam::" + account + ":role/" + pathAndName }

// awsEnv lists the environment variables that would let the machine's AWS setup leak
// into a test.
var awsEnv = []string{
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_IAM", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
}

// isolateAWSEnv unsets the AWS environment for the test (restored afterwards), points the
// shared config files at nothing and turns off IMDS.
func isolateAWSEnv(t testing.TB) {
	t.Helper()
	for _, k := range awsEnv {
		t.Setenv(k, "") // registers the restore
		_ = os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", dir+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", dir+"/credentials")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// newIAM starts an iamserver and a real SDK client for it, built by NewClient with static
// credentials and the server as base endpoint.
func newIAM(t testing.TB) (*iamserver.Server, *iam.Client) {
	t.Helper()
	isolateAWSEnv(t)
	srv := iamserver.New()
	t.Cleanup(srv.Close)
	c, err := awsiam.NewClient(context.Background(), "us-east-1",
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")),
		config.WithBaseEndpoint(srv.URL()),
		config.WithSharedConfigFiles(nil), config.WithSharedCredentialsFiles(nil),
	)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return srv, c
}

// testAccount is the account of the roles the tests put into the IAM endpoint; sources
// built by newSource know it as their own (see TestTrustPolicyAccountBoundary otherwise).
const testAccount = "123456789012"

func newSource(t testing.TB, o awsiam.Options) *awsiam.Source {
	t.Helper()
	if o.AccountID == "" {
		o.AccountID = testAccount
	}
	s, err := awsiam.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// clock is a settable clock for cache expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTrustPolicyRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		arn    string
		policy string
	}{
		{
			name: "literal %2F, spaces, newlines and non-ASCII",
			arn:  roleARN("s3-writer"),
			policy: "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\n    \"Sid\": \"Fédération EKS\",\n" +
				"    \"Effect\": \"Allow\",\n    \"Principal\": {\"Federated\": \"arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC\"},\n" +
				"    \"Action\": \"sts:AssumeRoleWithWebIdentity\",\n" +
				"    \"Condition\": {\"StringEquals\": {\"oidc.eks.us-east-1.amazonaws.com/id/ABC:sub\": \"system:serviceaccount:prod:a%2Fb\"}}\n  }]\n}",
		},
		{
			name:   "plus, percent and reserved characters",
			arn:    roleARN("plus"),
			policy: `{"Version":"2012-10-17","Statement":[{"Sid":"a+b=c&d?e#f%25g~h*i'j(k)","Effect":"Allow","Principal":{"Federated":"x"},"Action":"sts:AssumeRoleWithWebIdentity"}]}`,
		},
		{
			name:   "role with a path",
			arn:    roleARN("team/app/reader"),
			policy: `{"Version":"2012-10-17","Statement":[]}`,
		},
		{
			name:   "already URL-encoded text stays encoded once",
			arn:    roleARN("encoded"),
			policy: `%7B%22Version%22%3A%222012-10-17%22%7D`,
		},
	}
	srv, client := newIAM(t)
	src := newSource(t, awsiam.Options{Client: client})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.PutRole(tt.arn, tt.policy)
			got, err := src.TrustPolicy(context.Background(), tt.arn)
			if err != nil {
				t.Fatalf("TrustPolicy: %v", err)
			}
			if got != tt.policy {
				t.Errorf("TrustPolicy round trip:\n got %q\nwant %q", got, tt.policy)
			}
		})
	}
}

func TestTrustPolicyErrors(t *testing.T) {
	arn := roleARN("app")
	tests := []struct {
		name      string
		setup     func(*iamserver.Server)
		arn       string
		wantClass error
		wantText  []string
		wantCalls int // GetRole calls reaching the server, retries included
	}{
		{
			name:      "no such entity",
			setup:     func(*iamserver.Server) {},
			arn:       roleARN("missing"),
			wantClass: awsiam.ErrNotFound,
			wantText:  []string{`get role "` + roleARN("missing") + `": role does not exist`, "NoSuchEntity: The role with name missing cannot be found."},
			wantCalls: 1,
		},
		{
			name:      "same name at another path",
			setup:     func(s *iamserver.Server) { s.PutRole(roleARN("other/path/app"), "{}") },
			arn:       arn,
			wantClass: awsiam.ErrNotFound,
			wantText:  []string{"role does not exist", `IAM's role named "app" is "` + roleARN("other/path/app") + `", in another path or account`},
			wantCalls: 1,
		},
		{
			name:      "same name in another account",
			setup:     func(s *iamserver.Server) { s.PutRole("arn:aws:iam::210987654321:role/app", "{}") },
			arn:       arn,
			wantClass: awsiam.ErrOtherAccount,
			wantText:  []string{"in another path or account"},
			wantCalls: 1,
		},
		{
			name:      "throttled, retried once",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeThrottling) },
			arn:       arn,
			wantClass: awsiam.ErrThrottled,
			wantText:  []string{"IAM throttled", "Throttling: Rate exceeded"},
			wantCalls: awsiam.MaxAttempts,
		},
		{
			name:      "access denied names the permission",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeAccessDenied) },
			arn:       arn,
			wantClass: awsiam.ErrAccessDenied,
			wantText:  []string{"access denied: the webhook's AWS credentials lack permission iam:GetRole on " + arn},
			wantCalls: 1,
		},
		{
			name:      "credentials rejected",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeInvalidClientTokenID) },
			arn:       arn,
			wantClass: awsiam.ErrAccessDenied,
			wantText:  []string{"IAM rejected the webhook's AWS credentials"},
			wantCalls: 1,
		},
		{
			name:      "service failure 500, retried once",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeServiceFailure) },
			arn:       arn,
			wantClass: awsiam.ErrUnavailable,
			wantText:  []string{"IAM unavailable", "ServiceFailure"},
			wantCalls: awsiam.MaxAttempts,
		},
		{
			name:      "service unavailable 503",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeServiceUnavailable) },
			arn:       arn,
			wantClass: awsiam.ErrUnavailable,
			wantText:  []string{"IAM unavailable"},
			wantCalls: awsiam.MaxAttempts,
		},
		{
			name:      "one throttle then success is retried by the SDK",
			setup:     func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.FailNext(1, iamserver.CodeThrottling) },
			arn:       arn,
			wantCalls: 2,
		},
		{
			name:      "invalid ARN makes no call",
			setup:     func(*iamserver.Server) {},
			arn:       "arn:aws:iam::123:role/x",
			wantClass: awsiam.ErrInvalidARN,
			wantText:  []string{`get role "arn:aws:iam::123:role/x": invalid role ARN`},
			wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, client := newIAM(t)
			tt.setup(srv)
			src := newSource(t, awsiam.Options{Client: client})
			_, err := src.TrustPolicy(context.Background(), tt.arn)
			if tt.wantClass == nil {
				if err != nil {
					t.Fatalf("TrustPolicy: %v", err)
				}
			} else {
				if !errors.Is(err, tt.wantClass) {
					t.Fatalf("TrustPolicy error = %v, want class %v", err, tt.wantClass)
				}
				var e *awsiam.Error
				if !errors.As(err, &e) {
					t.Errorf("TrustPolicy error %T is not an *awsiam.Error", err)
				}
				for _, want := range tt.wantText {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("TrustPolicy error %q does not contain %q", err, want)
					}
				}
			}
			if got := srv.TotalCalls(); got != tt.wantCalls {
				t.Errorf("server saw %d calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestTrustPolicySlowAnswerHitsCallTimeout(t *testing.T) {
	srv, client := newIAM(t)
	srv.PutRole(roleARN("slow"), "{}")
	srv.SetDelay(5 * time.Second)
	const callTimeout = 300 * time.Millisecond
	src := newSource(t, awsiam.Options{Client: client, CallTimeout: callTimeout})

	start := time.Now()
	_, err := src.TrustPolicy(context.Background(), roleARN("slow"))
	elapsed := time.Since(start)
	if !errors.Is(err, awsiam.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TrustPolicy error = %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if slack := 500 * time.Millisecond; elapsed > callTimeout+slack {
		t.Errorf("TrustPolicy took %s, want < CallTimeout %s + %s", elapsed, callTimeout, slack)
	}
	t.Logf("error: %v", err)
}

func TestTrustPolicyServerDown(t *testing.T) {
	srv, client := newIAM(t)
	srv.PutRole(roleARN("app"), "{}")
	srv.Down()
	clk := newClock()
	src := newSource(t, awsiam.Options{Client: client, Now: clk.Now})

	start := time.Now()
	_, err := src.TrustPolicy(context.Background(), roleARN("app"))
	elapsed := time.Since(start)
	if !errors.Is(err, awsiam.ErrUnavailable) {
		t.Fatalf("TrustPolicy error = %v, want ErrUnavailable", err)
	}
	// One retry after at most MaxBackoff; no waiting for CallTimeout.
	if limit := awsiam.MaxBackoff + 500*time.Millisecond; elapsed > limit {
		t.Errorf("TrustPolicy took %s with the server down, want < %s", elapsed, limit)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("TrustPolicy error %q does not say the connection was refused", err)
	}
	t.Logf("error: %v", err)

	// Back up: after the short transient-error TTL the role is found.
	if err := srv.Up(); err != nil {
		t.Skipf("cannot listen again on the old port: %v", err)
	}
	clk.Advance(awsiam.MaxTransientErrorTTL)
	if _, err := src.TrustPolicy(context.Background(), roleARN("app")); err != nil {
		t.Fatalf("TrustPolicy after Up: %v", err)
	}
}

func TestTrustPolicyCallerGivesUpFlightIsCached(t *testing.T) {
	srv, client := newIAM(t)
	srv.PutRole(roleARN("app"), `{"a":1}`)
	srv.SetDelay(400 * time.Millisecond)
	src := newSource(t, awsiam.Options{Client: client, CallTimeout: 5 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.TrustPolicy(ctx, roleARN("app"))
	if elapsed := time.Since(start); elapsed > 300*time.Millisecond {
		t.Errorf("TrustPolicy returned %s after the caller's 50ms deadline", elapsed)
	}
	if !errors.Is(err, awsiam.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TrustPolicy error = %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}

	// The call goes on without the caller and its answer is cached.
	srv.SetDelay(0)
	waitFor(t, 3*time.Second, func() bool {
		doc, err := src.TrustPolicy(context.Background(), roleARN("app"))
		return err == nil && doc == `{"a":1}`
	})
	if got := srv.Calls("app"); got != 1 {
		t.Errorf("server saw %d GetRole calls for app, want 1", got)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTrustPolicyConcurrentCallsShareOneGetRole(t *testing.T) {
	srv, client := newIAM(t)
	const roles, callers = 10, 1000
	for i := range roles {
		srv.PutRole(roleARN(fmt.Sprintf("role-%d", i)), fmt.Sprintf(`{"role":%d}`, i))
	}
	srv.SetDelay(50 * time.Millisecond) // keep flights open while callers pile up
	src := newSource(t, awsiam.Options{Client: client})

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			r := i % roles
			doc, err := src.TrustPolicy(context.Background(), roleARN(fmt.Sprintf("role-%d", r)))
			if err != nil {
				errs <- err
			} else if want := fmt.Sprintf(`{"role":%d}`, r); doc != want {
				errs <- fmt.Errorf("role-%d: got %q, want %q", r, doc, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range roles {
		if got := srv.Calls(fmt.Sprintf("role-%d", i)); got != 1 {
			t.Errorf("role-%d: %d GetRole calls, want 1", i, got)
		}
	}
	if got := srv.TotalCalls(); got != roles {
		t.Errorf("server saw %d calls, want %d", got, roles)
	}
}

// gauge wraps a Client and records the most GetRole calls in flight at once.
type gauge struct {
	awsiam.Client
	cur, max atomic.Int32
}

func (g *gauge) GetRole(ctx context.Context, in *iam.GetRoleInput, opts ...func(*iam.Options)) (*iam.GetRoleOutput, error) {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	return g.Client.GetRole(ctx, in, opts...)
}

func TestTrustPolicyMaxConcurrency(t *testing.T) {
	srv, client := newIAM(t)
	const roles, limit = 12, 3
	for i := range roles {
		srv.PutRole(roleARN(fmt.Sprintf("role-%d", i)), "{}")
	}
	srv.SetDelay(30 * time.Millisecond)
	g := &gauge{Client: client}
	src := newSource(t, awsiam.Options{Client: g, MaxConcurrency: limit})

	var wg sync.WaitGroup
	for i := range roles {
		wg.Go(func() {
			if _, err := src.TrustPolicy(context.Background(), roleARN(fmt.Sprintf("role-%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := g.max.Load(); got > limit {
		t.Errorf("%d GetRole calls in flight at once, want at most %d", got, limit)
	}
	if got := srv.TotalCalls(); got != roles {
		t.Errorf("server saw %d calls, want %d", got, roles)
	}
}

// stuckClient answers GetRole only once release is closed, ignoring ctx, so a call holds
// its slot as long as the test wants.
type stuckClient struct {
	started chan struct{} // receives one value per call
	release chan struct{}
}

func (c *stuckClient) GetRole(ctx context.Context, in *iam.GetRoleInput, _ ...func(*iam.Options)) (*iam.GetRoleOutput, error) {
	c.started <- struct{}{}
	<-c.release
	return &iam.GetRoleOutput{Role: &types.Role{
		Arn:                      aws.String(roleARN(*in.RoleName)),
		AssumeRolePolicyDocument: aws.String("%7B%7D"),
	}}, nil
}

func TestTrustPolicyCallSlotWaitEndsAtCallTimeout(t *testing.T) {
	c := &stuckClient{started: make(chan struct{}, 10), release: make(chan struct{})}
	const callTimeout = 100 * time.Millisecond
	src := newSource(t, awsiam.Options{Client: c, MaxConcurrency: 1, CallTimeout: callTimeout})

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { _, _ = src.TrustPolicy(context.Background(), roleARN("a")) })
	<-c.started // a holds the only slot

	start := time.Now()
	_, err := src.TrustPolicy(context.Background(), roleARN("b"))
	if !errors.Is(err, awsiam.ErrUnavailable) || !strings.Contains(err.Error(), "call slots stayed busy") {
		t.Errorf("TrustPolicy error = %v, want ErrUnavailable about busy call slots", err)
	}
	if elapsed := time.Since(start); elapsed > callTimeout+500*time.Millisecond {
		t.Errorf("waiting for a slot took %s, want about %s", elapsed, callTimeout)
	}
	close(c.release)
	// A busy local queue is not an IAM answer and is not cached: the next lookup calls.
	doc, err := src.TrustPolicy(context.Background(), roleARN("b"))
	if err != nil || doc != "{}" {
		t.Errorf("TrustPolicy after the slot freed = %q, %v; want \"{}\"", doc, err)
	}
}

func TestTrustPolicyCacheExpiry(t *testing.T) {
	type step struct {
		advance   time.Duration
		mutate    func(*iamserver.Server)
		wantClass error // nil: success
		wantCalls int   // cumulative GetRole calls for the role
	}
	arn := roleARN("app")
	tests := []struct {
		name  string
		opts  awsiam.Options
		setup func(*iamserver.Server)
		steps []step
	}{
		{
			name:  "positive entries live for TTL",
			setup: func(s *iamserver.Server) { s.PutRole(arn, "{}") },
			steps: []step{
				{wantCalls: 1},
				{advance: awsiam.DefaultTTL - time.Second, wantCalls: 1},
				{advance: time.Second, wantCalls: 2},
			},
		},
		{
			name:  "custom TTL",
			opts:  awsiam.Options{TTL: time.Minute},
			setup: func(s *iamserver.Server) { s.PutRole(arn, "{}") },
			steps: []step{
				{wantCalls: 1},
				{advance: time.Minute, mutate: func(s *iamserver.Server) { s.DeleteRole("app") }, wantClass: awsiam.ErrNotFound, wantCalls: 2},
			},
		},
		{
			name:  "not found is cached for NegativeTTL",
			setup: func(*iamserver.Server) {},
			steps: []step{
				{wantClass: awsiam.ErrNotFound, wantCalls: 1},
				{advance: 30 * time.Second, mutate: func(s *iamserver.Server) { s.PutRole(arn, "{}") }, wantClass: awsiam.ErrNotFound, wantCalls: 1},
				{advance: 30 * time.Second, wantCalls: 2},
			},
		},
		{
			name:  "access denied is cached for NegativeTTL",
			setup: func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeAccessDenied) },
			steps: []step{
				{wantClass: awsiam.ErrAccessDenied, wantCalls: 1},
				{advance: 59 * time.Second, mutate: func(s *iamserver.Server) { s.SetFault("") }, wantClass: awsiam.ErrAccessDenied, wantCalls: 1},
				{advance: time.Second, wantCalls: 2},
			},
		},
		{
			name:  "throttling is cached only briefly",
			setup: func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeThrottling) },
			steps: []step{
				{wantClass: awsiam.ErrThrottled, wantCalls: 2},
				{advance: awsiam.MaxTransientErrorTTL - time.Second, mutate: func(s *iamserver.Server) { s.SetFault("") }, wantClass: awsiam.ErrThrottled, wantCalls: 2},
				{advance: time.Second, wantCalls: 3},
			},
		},
		{
			name:  "a short NegativeTTL also shortens the transient TTL",
			opts:  awsiam.Options{NegativeTTL: 2 * time.Second},
			setup: func(s *iamserver.Server) { s.PutRole(arn, "{}"); s.SetFault(iamserver.CodeServiceFailure) },
			steps: []step{
				{wantClass: awsiam.ErrUnavailable, wantCalls: 2},
				{advance: 2 * time.Second, mutate: func(s *iamserver.Server) { s.SetFault("") }, wantCalls: 3},
			},
		},
		{
			name:  "a role that appears late is seen after NegativeTTL",
			opts:  awsiam.Options{NegativeTTL: 5 * time.Second},
			setup: func(*iamserver.Server) {},
			steps: []step{
				{wantClass: awsiam.ErrNotFound, wantCalls: 1},
				{advance: 5 * time.Second, mutate: func(s *iamserver.Server) { s.PutRole(arn, "{}") }, wantCalls: 2},
				{advance: awsiam.DefaultTTL - time.Second, wantCalls: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, client := newIAM(t)
			tt.setup(srv)
			clk := newClock()
			tt.opts.Client, tt.opts.Now = client, clk.Now
			src := newSource(t, tt.opts)
			for i, st := range tt.steps {
				clk.Advance(st.advance)
				if st.mutate != nil {
					st.mutate(srv)
				}
				_, err := src.TrustPolicy(context.Background(), arn)
				switch {
				case st.wantClass == nil && err != nil:
					t.Errorf("step %d: TrustPolicy: %v", i, err)
				case st.wantClass != nil && !errors.Is(err, st.wantClass):
					t.Errorf("step %d: TrustPolicy error = %v, want class %v", i, err, st.wantClass)
				}
				if got := srv.Calls("app"); got != st.wantCalls {
					t.Errorf("step %d: %d GetRole calls so far, want %d", i, got, st.wantCalls)
				}
			}
		})
	}
}

func TestNewValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts awsiam.Options
		want []string // all problems are reported at once
	}{
		{name: "no client", opts: awsiam.Options{}, want: []string{"Client is required"}},
		{
			name: "negative values",
			opts: awsiam.Options{TTL: -1, NegativeTTL: -1, CallTimeout: -1, MaxConcurrency: -1, RateLimit: -1},
			want: []string{"Client is required", "TTL must not be negative", "NegativeTTL must not be negative", "CallTimeout must not be negative", "MaxConcurrency must not be negative",
				"RateLimit and RateBurst must not be negative"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := awsiam.New(context.Background(), tt.opts)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestTrustPolicyRateLimit: lookups of many distinct roles cost at most burst + rate ×
// duration GetRole calls; the others answer ErrRateLimited at once, uncached.
func TestTrustPolicyRateLimit(t *testing.T) {
	const (
		limit   = 20.0
		burst   = 10
		lookups = 500
		workers = 25
	)
	srv, client := newIAM(t)
	src := newSource(t, awsiam.Options{Client: client, RateLimit: limit, RateBurst: burst})
	var limited, slowest atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < lookups; i += workers {
				began := time.Now()
				_, err := src.TrustPolicy(context.Background(), roleARN(fmt.Sprintf("unique-%d", i)))
				took := time.Since(began)
				for old := slowest.Load(); int64(took) > old && !slowest.CompareAndSwap(old, int64(took)); old = slowest.Load() {
				}
				switch {
				case errors.Is(err, awsiam.ErrRateLimited):
					limited.Add(1)
				case !errors.Is(err, awsiam.ErrNotFound):
					t.Errorf("lookup %d: %v, want not found or rate limited", i, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	calls := srv.TotalCalls()
	if bound := burst + int(limit*elapsed.Seconds()) + 1; calls > bound {
		t.Errorf("%d lookups of distinct roles in %s made %d GetRole calls, want at most burst + rate × duration = %d", lookups, elapsed, calls, bound)
	}
	if calls+int(limited.Load()) != lookups {
		t.Errorf("%d calls + %d rate limited != %d lookups", calls, limited.Load(), lookups)
	}
	if d := time.Duration(slowest.Load()); d > awsiam.MaxRateWait+time.Second {
		t.Errorf("slowest lookup took %s: a rate-limited lookup must not wait long", d)
	}
	t.Logf("%d lookups in %s: %d GetRole calls, %d rate limited", lookups, elapsed.Round(time.Millisecond), calls, limited.Load())
}

// TestTrustPolicyRateLimitedIsNotCached: a lookup refused by the local limit is tried
// again once the bucket has a token, and a role IAM does not know is then cached.
func TestTrustPolicyRateLimitedIsNotCached(t *testing.T) {
	srv, client := newIAM(t)
	src := newSource(t, awsiam.Options{Client: client, RateLimit: 1, RateBurst: 1})
	ctx := context.Background()
	if _, err := src.TrustPolicy(ctx, roleARN("first")); !errors.Is(err, awsiam.ErrNotFound) {
		t.Fatalf("first lookup: %v, want not found", err)
	}
	if _, err := src.TrustPolicy(ctx, roleARN("second")); !errors.Is(err, awsiam.ErrRateLimited) || !strings.Contains(err.Error(), "rate limited") {
		t.Fatalf("second lookup at once: %v, want rate limited", err)
	}
	// The bucket refills in real time, one token a second: poll until the lookup gets one.
	for deadline := time.Now().Add(3 * time.Second); ; {
		_, err := src.TrustPolicy(ctx, roleARN("second"))
		if errors.Is(err, awsiam.ErrNotFound) {
			break
		}
		if !errors.Is(err, awsiam.ErrRateLimited) || time.Now().After(deadline) {
			t.Fatalf("second lookup, later: %v, want not found once the bucket refilled (a rate-limited answer is not cached)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := src.TrustPolicy(ctx, roleARN("second")); !errors.Is(err, awsiam.ErrNotFound) {
		t.Fatalf("second lookup again: %v, want the cached not found", err)
	}
	if got := srv.Calls("second"); got != 1 {
		t.Errorf("GetRole calls for the unknown role = %d, want 1 (negatively cached)", got)
	}
}

func BenchmarkTrustPolicyCached(b *testing.B) {
	srv, client := newIAM(b)
	arn := roleARN("bench")
	srv.PutRole(arn, `{"Version":"2012-10-17"}`)
	src := newSource(b, awsiam.Options{Client: client})
	ctx := context.Background()
	if _, err := src.TrustPolicy(ctx, arn); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.TrustPolicy(ctx, arn); err != nil {
				b.Fatal(err)
			}
		}
	})
	if got := srv.TotalCalls(); got != 1 {
		b.Errorf("server saw %d calls, want 1", got)
	}
}

// TestTrustPolicyAccountBoundary: GetRole sees only the credentials' own account, so
// "no such role" is only authoritative there.
func TestTrustPolicyAccountBoundary(t *testing.T) {
	srv, client := newIAM(t)
	tests := []struct {
		name      string
		account   string
		arn       string
		wantClass error
		wantCalls int
	}{
		{"own account, missing role", testAccount, "arn:aws:iam::123456789012:role/missing", awsiam.ErrNotFound, 1},
		{"other account: no call", testAccount, "arn:aws:iam::210987654321:role/missing", awsiam.ErrOtherAccount, 0},
		{"unknown account, missing role", "", "arn:aws:iam::123456789012:role/missing", awsiam.ErrOtherAccount, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv.ResetCalls()
			s, err := awsiam.New(context.Background(), awsiam.Options{Client: client, AccountID: tc.account})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.TrustPolicy(context.Background(), tc.arn)
			if !errors.Is(err, tc.wantClass) {
				t.Fatalf("err = %v, want class %v", err, tc.wantClass)
			}
			if got := srv.TotalCalls(); got != tc.wantCalls {
				t.Errorf("GetRole calls = %d, want %d", got, tc.wantCalls)
			}
		})
	}
}
