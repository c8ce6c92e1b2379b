package serviceaccount

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Names of the trust check's dependencies: the label values of
// irsa_webhook_trust_check_dependencies_ready.
const (
	DependencyIssuer     = "issuer"      // the cluster's service-account issuer (API server)
	DependencyAWSAccount = "aws_account" // the webhook's own AWS account (STS)
)

// LookupBackoff paces the retries of a dependency's lookup: 1s, doubling, at most a minute
// apart, with 10% jitter so that replicas do not retry in step; forever, until the lookup
// succeeds or the webhook stops.
var LookupBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 10, Cap: time.Minute}

// LookupTimeout bounds one attempt of a lookup.
const LookupTimeout = 10 * time.Second

// Dependency is one value the trust check needs from outside the webhook and learns once,
// in the background: until then Value is "". It is safe for concurrent use.
type Dependency struct {
	name    string
	lookup  func(context.Context) (string, error)
	onKnown func(string)
	value   atomic.Pointer[string]
	lastErr atomic.Pointer[string] // why the last attempt failed
}

// Value is the dependency's value, "" while it is not known.
func (d *Dependency) Value() string {
	if v := d.value.Load(); v != nil {
		return *v
	}
	return ""
}

// Dependencies are the trust check's dependencies. Start (a controller-runtime Runnable)
// looks up the unknown ones, retrying with LookupBackoff; each change is logged and shown by
// the gauge irsa_webhook_trust_check_dependencies_ready; Check is a readiness check.
type Dependencies struct {
	Backoff wait.Backoff  // LookupBackoff unless set before Start
	Timeout time.Duration // LookupTimeout unless set before Start

	log   logr.Logger
	ready *prometheus.GaugeVec
	deps  []*Dependency
}

// NewDependencies returns an empty set whose gauge is registered with reg (nil: not
// registered, for tests).
func NewDependencies(reg prometheus.Registerer, log logr.Logger) (*Dependencies, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "irsa_webhook_trust_check_dependencies_ready",
		Help: "1 when the trust check knows the dependency (issuer: the cluster's service-account issuer; aws_account: the webhook's AWS account), 0 while it is still looking it up.",
	}, []string{"dependency"})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			return nil, fmt.Errorf("register the trust check's dependency gauge: %w", err)
		}
	}
	return &Dependencies{Backoff: LookupBackoff, Timeout: LookupTimeout, log: log, ready: g}, nil
}

// Known adds a dependency whose value is given (by a flag): known from the start.
func (ds *Dependencies) Known(name, value string) *Dependency {
	d := &Dependency{name: name}
	d.value.Store(&value)
	ds.deps = append(ds.deps, d)
	ds.ready.WithLabelValues(name).Set(1)
	return d
}

// Lookup adds a dependency that Start looks up; onKnown (may be nil) is called once with the
// value when it is found.
func (ds *Dependencies) Lookup(name string, lookup func(context.Context) (string, error), onKnown func(string)) *Dependency {
	d := &Dependency{name: name, lookup: lookup, onKnown: onKnown}
	msg := "not looked up yet"
	d.lastErr.Store(&msg)
	ds.deps = append(ds.deps, d)
	ds.ready.WithLabelValues(name).Set(0)
	return d
}

// Start looks up every unknown dependency, each in its own goroutine, until all are known
// or ctx ends. It implements controller-runtime's manager.Runnable and returns nil.
func (ds *Dependencies) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, d := range ds.deps {
		if d.Value() != "" || d.lookup == nil {
			continue
		}
		wg.Go(func() { ds.discover(ctx, d) })
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection returns false: every replica answers trust checks.
func (ds *Dependencies) NeedLeaderElection() bool { return false }

// discover retries d's lookup until it succeeds or ctx ends.
func (ds *Dependencies) discover(ctx context.Context, d *Dependency) {
	attempts := 0
	_ = ds.Backoff.DelayFunc().Until(ctx, true, true, func(ctx context.Context) (bool, error) {
		attempts++
		actx, cancel := context.WithTimeout(ctx, ds.Timeout)
		v, err := d.lookup(actx)
		cancel()
		if err == nil && v == "" {
			err = errors.New("the lookup returned an empty value")
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			msg := err.Error()
			d.lastErr.Store(&msg)
			// One line per attempt: the backoff keeps that to one a minute at most.
			ds.log.Error(err, "trust check dependency unavailable; retrying, trust checks are unverified until then", "dependency", d.name, "attempt", attempts)
			return false, nil
		}
		if d.onKnown != nil {
			d.onKnown(v)
		}
		d.value.Store(&v)
		ds.ready.WithLabelValues(d.name).Set(1)
		ds.log.Info("trust check dependency known", "dependency", d.name, "value", v, "attempts", attempts)
		return true, nil
	})
}

// Check is a controller-runtime healthz.Checker: an error naming every dependency not known
// yet and why.
func (ds *Dependencies) Check(*http.Request) error {
	var errs []error
	for _, d := range ds.deps {
		if d.Value() == "" {
			errs = append(errs, fmt.Errorf("trust check dependency %s not known yet: %s", d.name, *d.lastErr.Load()))
		}
	}
	return errors.Join(errs...)
}
