// Package mappingcheck runs the ServiceAccount trust check for roles that the mapping
// ConfigMap (package mapping) gives ServiceAccounts: when an edit maps a ServiceAccount to a
// new role or audience, the role's trust policy is checked for that ServiceAccount exactly
// as when its own role annotation changes, with the same Event on the ServiceAccount
// (TrustPolicyMismatch / TrustPolicyUnverified), the same metric and a log line. Nobody is
// admitted or denied: the ConfigMap edit has already been stored.
//
// Checked: existing ServiceAccounts that do not name a role themselves (their annotation
// wins) and that the edit maps to a new role or audience, whether through an exact entry
// ("<namespace>/<name>") or a wildcard ("test-*/<name>", "*/<name>"). A wildcard can reach
// many ServiceAccounts, so the work of one edit is bounded:
//   - at most MaxChecks ServiceAccounts are checked per edit (the rest are counted in a log
//     line); the ServiceAccounts a wildcard reaches are found in the webhook's own
//     ServiceAccount cache (one pass over it, no API call);
//   - every check goes through the trust source's cache and rate limit (package awsiam):
//     ServiceAccounts mapped to the same role cost one GetRole, and past --iam-rate-limit a
//     check is "not verified (rate limited)", counted like the admission checks';
//   - one edit's checks run one at a time, each within the admission check's timeout.
//
// ServiceAccounts created after their mapping are checked at admission
// (serviceaccount.Handler.Mapped).
package mappingcheck

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// MaxChecks bounds the trust checks one ConfigMap edit causes.
const MaxChecks = 100

// maxNote bounds an Event's note, as the admission handler does.
const maxNote = 1000

// ServiceAccounts finds a ServiceAccount's IRSA view, and lists the cached ones (package
// sacache's Cache is one).
type ServiceAccounts interface {
	ServiceAccount(ctx context.Context, namespace, name string) (sa irsa.Object, found bool, err error)
	// EachServiceAccount calls f with every cached ServiceAccount until f returns false.
	EachServiceAccount(f func(namespace, name string) bool)
	// HasSynced reports whether the cache holds every ServiceAccount.
	HasSynced() bool
}

// syncPoll is how often a check waits for the ServiceAccount cache to sync (at start-up,
// the mapping is often read first).
const syncPoll = 100 * time.Millisecond

// Checker checks mapped roles. Its fields are those of the ServiceAccount admission handler
// it runs beside (New copies them).
type Checker struct {
	Source          serviceaccount.TrustSource
	Issuer          func() string // the cluster's issuer known now ("" while unknown)
	Defaults        irsa.Defaults
	Excluded        admission.ExcludedNamespaces
	Timeout         time.Duration // per check
	Events          serviceaccount.EventRecorder
	Metrics         *serviceaccount.Metrics
	ServiceAccounts ServiceAccounts
	ConfigMap       string // "<namespace>/<name>", for notes and logs
	Log             logr.Logger
	// DetailedWarnings puts the full findings (which quote the trust policy) in Events, as
	// the admission handler's; off, the Event tells only which of the ServiceAccount's own
	// claims failed (Verdict.TenantSummary) and the findings go to the debug log.
	DetailedWarnings bool

	mu sync.Mutex // one edit's checks at a time, in order
}

// New returns a checker with the settings of the admission handler h, writing Events with
// rec directly: the ServiceAccounts it checks are already stored.
func New(h *serviceaccount.Handler, rec serviceaccount.EventRecorder, sas ServiceAccounts, configMap string, log logr.Logger) *Checker {
	issuer := h.Issuer
	if issuer == nil {
		fixed := h.IssuerURL
		issuer = func() string { return fixed }
	}
	return &Checker{Source: h.Source, Issuer: issuer, Defaults: h.Defaults, Excluded: h.ExcludedNamespaces,
		Timeout: h.Timeout, Events: rec, Metrics: h.Metrics, ServiceAccounts: sas, ConfigMap: configMap, Log: log, DetailedWarnings: h.DetailedWarnings}
}

// Changed starts checking what next maps differently from prev, in the background until ctx
// ends; it returns at once (it is called on the watcher's informer goroutine).
func (c *Checker) Changed(ctx context.Context) func(prev, next *mapping.Mapping) {
	return func(prev, next *mapping.Mapping) {
		changes, more := mapping.Changes(prev, next, MaxChecks)
		wildcards := mapping.WildcardNames(prev, next)
		if len(changes) == 0 && len(wildcards) == 0 {
			return
		}
		go func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if len(wildcards) > 0 {
				if err := wait.PollUntilContextCancel(ctx, syncPoll, true, func(context.Context) (bool, error) { return c.ServiceAccounts.HasSynced(), nil }); err != nil {
					return
				}
				changes, more = c.throughWildcards(prev, next, wildcards, changes, more)
			}
			if more > 0 {
				c.Log.Info("mapped roles not checked: too many changes in one edit", "checked", len(changes), "notChecked", more, "max", MaxChecks)
			}
			for _, ch := range changes {
				if ctx.Err() != nil {
					return
				}
				c.check(ctx, ch)
			}
		}()
	}
}

// throughWildcards adds to changes the cached ServiceAccounts called one of names that next
// maps anew through a wildcard entry, up to MaxChecks in all, counting the rest in more.
func (c *Checker) throughWildcards(prev, next *mapping.Mapping, names []string, changes []mapping.Change, more int) ([]mapping.Change, int) {
	wanted := sets.New(names...)
	listed := sets.New[string]()
	for _, ch := range changes {
		listed.Insert(ch.Namespace + "/" + ch.Name)
	}
	var found []mapping.Change
	c.ServiceAccounts.EachServiceAccount(func(ns, name string) bool {
		if !wanted.Has(name) || c.Excluded.Excludes(ns) || !next.MatchesWildcard(ns, name) || listed.Has(ns+"/"+name) {
			return true
		}
		if e, ok := mapping.Changed(prev, next, ns, name); ok {
			if len(changes)+len(found) >= MaxChecks {
				more++
				return true
			}
			found = append(found, mapping.Change{Namespace: ns, Name: name, Entry: e})
		}
		return true
	})
	slices.SortFunc(found, func(a, b mapping.Change) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return append(changes, found...), more
}

func (c *Checker) check(ctx context.Context, ch mapping.Change) {
	if c.Excluded.Excludes(ch.Namespace) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	sa, found, err := c.ServiceAccounts.ServiceAccount(ctx, ch.Namespace, ch.Name)
	switch {
	case err != nil:
		c.Log.Info("mapped role not checked: serviceaccount lookup failed", "namespace", ch.Namespace, "serviceAccount", ch.Name, "error", err.Error())
		return
	case !found:
		return // pods cannot run as it; its creation will not be checked either (no annotation)
	}
	if _, own := sa.Annotations[irsa.Key(c.Defaults.AnnotationPrefix, irsa.RoleARNAnnotation)]; own {
		return // its annotation wins over the mapping, and was checked when it was set
	}
	// The entry as the annotations it stands for, read by the same function as annotations.
	mapped := irsa.Object{Namespace: ch.Namespace, Name: ch.Name, Annotations: ch.Entry.Annotations(c.Defaults.AnnotationPrefix)}
	v, _ := serviceaccount.CheckServiceAccount(ctx, c.Source, c.Issuer(), mapped, c.Defaults)
	c.Metrics.Observe(v)
	if v.Result == trustpolicy.Trusted {
		return
	}
	c.Log.Info("mapped role trust check failed", "configMap", c.ConfigMap, "namespace", ch.Namespace, "serviceAccount", ch.Name,
		"roleArn", ch.Entry.RoleARN, "verdict", v.Result.String())
	c.Log.V(1).Info("mapped role trust check findings", "namespace", ch.Namespace, "serviceAccount", ch.Name, "findings", truncateFindings(strings.Join(v.Reasons, "; ")))
	if c.Events == nil {
		return
	}
	reason := serviceaccount.ReasonUnverified
	if v.Result == trustpolicy.NotTrusted {
		reason = serviceaccount.ReasonMismatch
	}
	obj := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ch.Namespace, Name: ch.Name}}
	// The Event is read in the ServiceAccount's namespace: the tenant's view of the verdict.
	summary := v.TenantSummary()
	if c.DetailedWarnings {
		summary = v.Summary()
	}
	note := serviceaccount.MappedBy(c.ConfigMap, c.DetailedWarnings) + summary
	if len(note) > maxNote {
		note = note[:maxNote] + "…"
	}
	c.Events.Eventf(obj, nil, corev1.EventTypeWarning, reason, "CheckTrustPolicy", "%s", note)
}

// truncateFindings bounds the findings in one debug log line.
func truncateFindings(s string) string {
	const maxFindings = 4000
	if len(s) <= maxFindings {
		return s
	}
	return s[:maxFindings] + "…"
}
