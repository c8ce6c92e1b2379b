package awsiam

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// Defaults for Options.
const (
	// DefaultTTL is how long a fetched trust policy is reused. Trust policies change
	// rarely, and a change only matters for the next ServiceAccount admission.
	DefaultTTL = 10 * time.Minute
	// DefaultNegativeTTL is how long "role does not exist" and "access denied" are reused.
	DefaultNegativeTTL = time.Minute
	// MaxTransientErrorTTL caps how long "throttled" and "unavailable" are reused: long
	// enough that a burst of admissions during an IAM outage or throttling costs one call
	// per role, short enough that recovery is seen quickly. The effective value is
	// min(NegativeTTL, MaxTransientErrorTTL).
	MaxTransientErrorTTL = 10 * time.Second
	// DefaultMaxConcurrency bounds concurrent GetRole calls across all roles.
	DefaultMaxConcurrency = 8
	// DefaultCallTimeout is the deadline of one GetRole call, the SDK's retry included
	// (waiting for a call slot has its own, equal bound). Callers bound their own wait
	// with their ctx; this bounds how long a call may hold a slot.
	DefaultCallTimeout = 2 * time.Second
	// DefaultRateLimit and DefaultRateBurst bound GetRole calls per webhook process (a
	// token bucket): IAM throttles per AWS account, so every distinct role name a tenant
	// writes must not cost a call. 50 new roles at once pass; past that, 5 a second.
	DefaultRateLimit = 5.0
	DefaultRateBurst = 50
	// MaxRateWait is how long a lookup may wait for the next token before it is answered
	// ErrRateLimited: it smooths a burst just past the bucket, and is short enough that a
	// rate-limited check still answers well within its deadline.
	MaxRateWait = 250 * time.Millisecond
)

// maxEntries bounds the cache: ServiceAccounts can name arbitrary ARNs, and every distinct
// one leaves an entry. Past the bound the least recently used entry is dropped. Only roles
// that exist in the webhook's account hold a document and its parsed policy (a few KB);
// the account's role quota bounds those far below maxEntries.
const maxEntries = 10000

// Client is the part of *iam.Client the Source uses.
type Client interface {
	GetRole(ctx context.Context, params *iam.GetRoleInput, optFns ...func(*iam.Options)) (*iam.GetRoleOutput, error)
}

// Options configure a Source. Zero values mean the defaults above.
type Options struct {
	Client         Client           // required; NewClient builds the real one
	TTL            time.Duration    // positive cache (DefaultTTL)
	NegativeTTL    time.Duration    // not found / access denied cache (DefaultNegativeTTL)
	MaxConcurrency int              // concurrent GetRole calls (DefaultMaxConcurrency)
	CallTimeout    time.Duration    // deadline of one GetRole call (DefaultCallTimeout)
	RateLimit      float64          // GetRole calls per second, sustained (DefaultRateLimit)
	RateBurst      int              // GetRole calls at once past a quiet spell (DefaultRateBurst)
	Now            func() time.Time // clock for cache expiry (time.Now)
	// AccountID is the AWS account of the Client's credentials (see CallerAccount); ""
	// when unknown. Roles of other accounts are reported as ErrOtherAccount without a
	// call; when it is unknown, IAM's NoSuchEntity is ErrOtherAccount too, because the
	// role may exist in an account GetRole cannot see.
	AccountID string
}

// Source fetches trust policies with IAM GetRole, caches them (and failures) per role ARN,
// makes at most one call per role at a time, and at most RateBurst + RateLimit × seconds
// calls in all. It is safe for concurrent use.
type Source struct {
	client       Client
	ttl          time.Duration
	negativeTTL  time.Duration
	transientTTL time.Duration
	callTimeout  time.Duration
	now          func() time.Time
	accountID    atomic.Pointer[string]
	slots        chan struct{} // semaphore bounding concurrent GetRole calls
	limiter      *rate.Limiter // token bucket bounding the rate of GetRole calls
	flights      singleflight.Group
	// cache holds an *entry by canonical role ARN. apimachinery's LRU gives the bound, the
	// eviction order and a TTL per entry (positive, negative and transient answers live
	// for different times); what it lacks, one call per role at a time, is the
	// singleflight group above.
	cache *cache.LRUExpireCache
}

// Policy is a role's trust policy as a Source holds it: the document, and the document
// parsed once, when it was fetched, so that a check reuses it instead of parsing it again.
type Policy struct {
	Document string              // plain JSON, decoded from IAM's URL encoding once
	Parsed   *trustpolicy.Policy // nil when the document does not parse (ParseErr)
	ParseErr error
}

type entry struct {
	policy Policy
	err    *Error // nil on success
	// expires is checked on every lookup: LRUExpireCache keeps an entry through its expiry
	// instant, and an answer is reused for strictly less than its TTL.
	expires time.Time
}

// New validates o, fills in defaults and returns a Source. ctx is unused today; it is
// there so construction can later do I/O (such as a credentials check) without an API
// change.
func New(ctx context.Context, o Options) (*Source, error) {
	var problems []string
	if o.Client == nil {
		problems = append(problems, "Client is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", o.TTL}, {"NegativeTTL", o.NegativeTTL}, {"CallTimeout", o.CallTimeout}} {
		if d.v < 0 {
			problems = append(problems, fmt.Sprintf("%s must not be negative, got %s", d.name, d.v))
		}
	}
	if o.MaxConcurrency < 0 {
		problems = append(problems, fmt.Sprintf("MaxConcurrency must not be negative, got %d", o.MaxConcurrency))
	}
	if o.RateLimit < 0 || o.RateBurst < 0 {
		problems = append(problems, fmt.Sprintf("RateLimit and RateBurst must not be negative, got %g and %d", o.RateLimit, o.RateBurst))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("configure IAM trust source: %s", strings.Join(problems, "; "))
	}
	s := &Source{
		client:      o.Client,
		ttl:         orDefault(o.TTL, DefaultTTL),
		negativeTTL: orDefault(o.NegativeTTL, DefaultNegativeTTL),
		callTimeout: orDefault(o.CallTimeout, DefaultCallTimeout),
		now:         o.Now,
	}
	s.accountID.Store(&o.AccountID)
	s.transientTTL = min(s.negativeTTL, MaxTransientErrorTTL)
	if s.now == nil {
		s.now = time.Now
	}
	s.cache = cache.NewLRUExpireCacheWithClock(maxEntries, clockFunc(s.now))
	n := o.MaxConcurrency
	if n == 0 {
		n = DefaultMaxConcurrency
	}
	s.slots = make(chan struct{}, n)
	limit, burst := o.RateLimit, o.RateBurst
	if limit == 0 {
		limit = DefaultRateLimit
	}
	if burst == 0 {
		burst = DefaultRateBurst
	}
	s.limiter = rate.NewLimiter(rate.Limit(limit), burst)
	return s, nil
}

// clockFunc adapts Options.Now to the cache's clock.
type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// TrustPolicy returns the trust policy (AssumeRolePolicyDocument) of the role as plain
// JSON, decoded from IAM's URL encoding exactly once. Errors are *Error, classed as
// ErrInvalidARN, ErrNotFound, ErrOtherAccount, ErrAccessDenied, ErrThrottled,
// ErrUnavailable or ErrRateLimited.
//
// Concurrent lookups of one role share one GetRole call. The call runs under its own
// deadline (CallTimeout), detached from ctx, so its answer is cached even if every caller
// gave up; a caller whose ctx ends first returns at once with ErrUnavailable.
func (s *Source) TrustPolicy(ctx context.Context, roleARN string) (string, error) {
	p, err := s.ParsedTrustPolicy(ctx, roleARN)
	return p.Document, err
}

// ParsedTrustPolicy is TrustPolicy with the document's parse, done once per fetch and
// cached with it. A document that does not parse is not an error of the lookup: it comes
// back with ParseErr set.
func (s *Source) ParsedTrustPolicy(ctx context.Context, roleARN string) (Policy, error) {
	// Only parsed ARNs are ever stored, and a valid ARN is its own canonical form, so the
	// hot path looks up before parsing.
	if p, e, ok := s.lookup(roleARN); ok {
		return result(p, e)
	}
	a, err := irsa.ParseRoleARN(roleARN)
	if err != nil {
		return Policy{}, &Error{RoleARN: roleARN, Class: ErrInvalidARN, Err: err}
	}
	key := a.String()
	if account := *s.accountID.Load(); account != "" && a.AccountID != account {
		return Policy{}, &Error{RoleARN: key, Class: ErrOtherAccount,
			Detail: fmt.Sprintf("the role is in account %s and the webhook's credentials can read roles of account %s only", a.AccountID, account)}
	}
	ch := s.flights.DoChan(key, func() (any, error) {
		p, e := s.fetch(ctx, a)
		if e != nil {
			return Policy{}, e
		}
		return p, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Policy{}, r.Err
		}
		return r.Val.(Policy), nil
	case <-ctx.Done():
		return Policy{}, &Error{RoleARN: key, Class: ErrUnavailable, Detail: "gave up waiting for IAM", Err: ctx.Err()}
	}
}

// result converts a cached outcome, avoiding a typed-nil error.
func result(p Policy, e *Error) (Policy, error) {
	if e != nil {
		return Policy{}, e
	}
	return p, nil
}

// SetAccountID sets the account of the Client's credentials once it is known (the webhook
// looks it up in the background) and forgets the "other account" answers given while it
// was not, so that a missing role is reported as such at once.
func (s *Source) SetAccountID(id string) {
	s.accountID.Store(&id)
	for _, k := range s.cache.Keys() {
		if v, ok := s.cache.Get(k); ok {
			if e := v.(*entry); e.err != nil && errors.Is(e.err.Class, ErrOtherAccount) {
				s.cache.Remove(k)
			}
		}
	}
}

// lookup returns the cached outcome for key if it has not expired.
func (s *Source) lookup(key string) (Policy, *Error, bool) {
	v, ok := s.cache.Get(key)
	if !ok {
		return Policy{}, nil, false
	}
	e := v.(*entry)
	if !s.now().Before(e.expires) {
		return Policy{}, nil, false
	}
	return e.policy, e.err, true
}

// fetch runs inside a singleflight flight: one per role at a time.
func (s *Source) fetch(callerCtx context.Context, a irsa.RoleARN) (Policy, *Error) {
	key := a.String()
	// A flight that just finished stored its outcome before leaving the group; a caller
	// that missed the cache a moment before must not call IAM again.
	if p, e, ok := s.lookup(key); ok {
		return p, e
	}
	// Waiting for a slot and the call each get CallTimeout: a busy local queue must not
	// eat the call's time and then be cached as an IAM timeout. Callers do not wait
	// longer than their own ctx either way.
	detached := context.WithoutCancel(callerCtx)
	if e := s.take(detached, key); e != nil {
		return Policy{}, e // a local limit, not an IAM answer: not cached
	}
	wait := time.NewTimer(s.callTimeout)
	defer wait.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-wait.C:
		// A local queue, not an IAM answer: not cached.
		return Policy{}, &Error{RoleARN: key, Class: ErrUnavailable,
			Detail: fmt.Sprintf("all %d IAM call slots stayed busy for %s", cap(s.slots), s.callTimeout)}
	}
	ctx, cancel := context.WithTimeout(detached, s.callTimeout)
	doc, e := s.getRole(ctx, a)
	cancel()
	<-s.slots
	var p Policy
	if e == nil {
		p.Document = doc
		p.Parsed, p.ParseErr = trustpolicy.Parse(doc)
	}
	s.store(key, p, e)
	return p, e
}

// take waits for a token of the rate limiter, at most MaxRateWait; past that the lookup
// is ErrRateLimited. A wait that could not end in time takes no token.
func (s *Source) take(ctx context.Context, key string) *Error {
	ctx, cancel := context.WithTimeout(ctx, MaxRateWait)
	defer cancel()
	if err := s.limiter.Wait(ctx); err != nil {
		return &Error{RoleARN: key, Class: ErrRateLimited,
			Detail: fmt.Sprintf("the webhook's limit of %g IAM calls a second (burst %d) is spent", float64(s.limiter.Limit()), s.limiter.Burst())}
	}
	return nil
}

// getRole calls IAM and turns its answer into the decoded trust policy.
func (s *Source) getRole(ctx context.Context, a irsa.RoleARN) (string, *Error) {
	key := a.String()
	out, err := s.client.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(a.Name)})
	if err != nil {
		e := classify(key, err)
		if errors.Is(e.Class, ErrNotFound) && *s.accountID.Load() == "" {
			e.Class = ErrOtherAccount
			e.Detail = "IAM has no such role in the webhook's own account, and that account is unknown, so the role may live in another"
		}
		return "", e
	}
	if out == nil || out.Role == nil || aws.ToString(out.Role.Arn) == "" {
		return "", &Error{RoleARN: key, Class: ErrUnavailable, Detail: "IAM's GetRole answer has no role"}
	}
	if got := aws.ToString(out.Role.Arn); !sameRole(got, a) {
		class := ErrNotFound
		if g, err := irsa.ParseRoleARN(got); err != nil || g.AccountID != a.AccountID {
			class = ErrOtherAccount
		}
		return "", &Error{RoleARN: key, Class: class,
			Detail: fmt.Sprintf("IAM's role named %q is %q, in another path or account", a.Name, got)}
	}
	enc := aws.ToString(out.Role.AssumeRolePolicyDocument)
	if enc == "" {
		return "", &Error{RoleARN: key, Class: ErrUnavailable, Detail: "IAM's GetRole answer has no trust policy"}
	}
	// IAM percent-encodes the document per RFC 3986 and the SDK hands it over as is.
	// PathUnescape is RFC 3986 decoding: unlike QueryUnescape it keeps a literal '+' a
	// '+' (IAM always sends '+' as %2B and ' ' as %20, so the two agree on real answers).
	// Decoding once turns %252F back into the %2F the author wrote.
	doc, err := url.PathUnescape(enc)
	if err != nil {
		return "", &Error{RoleARN: key, Class: ErrUnavailable, Detail: "decode the trust policy IAM returned", Err: err}
	}
	return doc, nil
}

// sameRole reports whether IAM's ARN names the requested role. GetRole looks up by name
// only (in the caller's account), so the path and account are checked here. Role names
// are compared without case, as IAM treats them; a needless mismatch here would report
// a working role as missing.
func sameRole(got string, want irsa.RoleARN) bool {
	g, err := irsa.ParseRoleARN(got)
	if err != nil {
		return false
	}
	return g.Partition == want.Partition && g.AccountID == want.AccountID &&
		g.Path == want.Path && strings.EqualFold(g.Name, want.Name)
}

// store caches an outcome: successes for TTL, not found / access denied for NegativeTTL,
// throttled / unavailable for min(NegativeTTL, MaxTransientErrorTTL).
func (s *Source) store(key string, p Policy, e *Error) {
	ttl := s.ttl
	if e != nil {
		ttl = s.negativeTTL
		if transient(e.Class) {
			ttl = s.transientTTL
		}
	}
	s.cache.Add(key, &entry{policy: p, err: e, expires: s.now().Add(ttl)}, ttl)
}

// TrustSource is what the ServiceAccount trust check needs; *Source and *DirSource
// satisfy it. The text is plain JSON from *Source and the file's text as is from
// *DirSource (plain or URL-encoded JSON): pass either through trustpolicy.Parse, which
// accepts both.
type TrustSource interface {
	TrustPolicy(ctx context.Context, roleARN string) (string, error)
}

var (
	_ TrustSource = (*Source)(nil)
	_ TrustSource = (*DirSource)(nil)
)
