// Package sacache finds ServiceAccounts for the pod handler: from an informer that holds
// only what IRSA needs, and on a miss (a pod created right after its ServiceAccount,
// before the watch delivered it) from one bounded live GET.
//
// It uses client-go's metadata informer directly rather than controller-runtime's cache:
// the watch transfers ServiceAccount metadata only (no secrets), lookups read the
// informer's index without a reflective copy, the GroupVersionResource is fixed so no
// discovery call can fail at start-up, and a stopped process does not wait for a sync
// that an unreachable API server will never finish.
package sacache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// DefaultLiveLookupBudget bounds the live GET made on a cache miss.
const DefaultLiveLookupBudget = time.Second

// The live lookups' own client-side rate limit. Misses come in bursts: an informer relisting
// after an API server restart, or a manifest that creates ServiceAccounts and their
// workloads together, makes every pod of the burst miss at once. Behind client-go's default
// (5 requests/s, burst 10) the 11th lookup of a burst already waits past the 1 s budget and
// its pod is admitted without credentials. Concurrent lookups of one ServiceAccount are
// collapsed into one GET, so a burst costs one GET per ServiceAccount, not per pod: 200
// covers a burst of 200 distinct ServiceAccounts within the budget, and 100/s keeps a
// relisting webhook from loading the API server more than a single kubectl loop would.
const (
	LiveLookupQPS   = 100
	LiveLookupBurst = 200
)

var gvr = corev1.SchemeGroupVersion.WithResource("serviceaccounts")

// Cache is the ServiceAccount cache. Start it (it is a controller-runtime Runnable), gate
// readiness on HasSynced, and look ServiceAccounts up with ServiceAccount.
type Cache struct {
	informer toolscache.SharedIndexInformer
	live     metadata.Interface
	flights  singleflight.Group // one live GET per ServiceAccount at a time
	budget   time.Duration
	prefix   string
	// namespaces interns namespace names: thousands of ServiceAccounts share a few dozen.
	// Only the transform touches it, and client-go runs transforms one at a time.
	namespaces map[string]string
	// keys holds the known annotation keys, so stored objects share one copy of each.
	keys map[string]string
}

// NewForConfig returns a cache whose informer uses cfg and whose live lookups use a copy
// of cfg with their own rate limit (LiveLookupQPS, LiveLookupBurst).
func NewForConfig(cfg *rest.Config, prefix string, liveBudget time.Duration) (*Cache, error) {
	watch, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create metadata client: %w", err)
	}
	liveCfg := rest.CopyConfig(cfg)
	liveCfg.QPS, liveCfg.Burst, liveCfg.RateLimiter = LiveLookupQPS, LiveLookupBurst, nil
	live, err := metadata.NewForConfig(liveCfg)
	if err != nil {
		return nil, fmt.Errorf("create metadata client for live lookups: %w", err)
	}
	return New(watch, live, prefix, liveBudget)
}

// New returns a cache of the ServiceAccounts' annotations under prefix ("<prefix>/..."):
// the informer lists and watches through watch, lookups on a miss use live.
func New(watch, live metadata.Interface, prefix string, liveBudget time.Duration) (*Cache, error) {
	inf := metadatainformer.NewFilteredMetadataInformer(watch, gvr, metav1.NamespaceAll, 0, toolscache.Indexers{}, nil).Informer()
	c := &Cache{informer: inf, live: live, budget: liveBudget, prefix: prefix + "/",
		namespaces: map[string]string{}, keys: map[string]string{}}
	for _, name := range []string{irsa.RoleARNAnnotation, irsa.AudienceAnnotation, irsa.STSRegionalEndpointsAnnotation, irsa.TokenExpirationAnnotation} {
		k := irsa.Key(prefix, name)
		c.keys[k] = k
	}
	if err := inf.SetTransform(c.transform); err != nil {
		return nil, fmt.Errorf("set serviceaccount transform: %w", err)
	}
	return c, nil
}

// Start runs the informer until ctx ends.
func (c *Cache) Start(ctx context.Context) error {
	c.informer.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection: every replica serves, so every replica needs the cache.
func (c *Cache) NeedLeaderElection() bool { return false }

// HasSynced reports whether the initial list has been stored.
func (c *Cache) HasSynced() bool { return c.informer.HasSynced() }

// transform keeps the name, the namespace, the UID and the annotations under the prefix:
// at 100,000 ServiceAccounts whole metadata would be hundreds of megabytes. Nothing else of
// a stored object is read: the informer keys it by namespace and name, and the trust
// check's Events wait for the UID (Stored).
func (c *Cache) transform(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil // tombstones pass through
	}
	ns, ok := c.namespaces[m.Namespace]
	if !ok {
		ns = m.Namespace
		c.namespaces[ns] = ns
	}
	out := trim(m, c.prefix, c.keys)
	out.Namespace = ns
	return out, nil
}

// trim copies the name, namespace, UID and prefixed annotations, using the keys' shared copies.
func trim(m *metav1.PartialObjectMetadata, prefix string, keys map[string]string) *metav1.PartialObjectMetadata {
	out := &metav1.PartialObjectMetadata{}
	out.Name, out.Namespace, out.UID = m.Name, m.Namespace, m.UID
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, prefix) {
			if out.Annotations == nil {
				out.Annotations = make(map[string]string, 1)
			}
			if shared, ok := keys[k]; ok {
				k = shared
			}
			out.Annotations[k] = v
		}
	}
	return out
}

// Stored returns the UID and the prefixed annotations of the ServiceAccount the cache
// holds, from the cache only (no live GET): what the watch has delivered as stored. The
// annotations are shared with the cache: read them, do not modify.
func (c *Cache) Stored(namespace, name string) (types.UID, map[string]string, bool) {
	obj, exists, err := c.informer.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !exists {
		return "", nil, false
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return "", nil, false
	}
	return m.UID, m.Annotations, true
}

// ServiceAccount returns the ServiceAccount's IRSA view; found is false when it does not
// exist. The returned annotations are shared with the cache: read them, do not modify.
func (c *Cache) ServiceAccount(ctx context.Context, namespace, name string) (irsa.Object, bool, error) {
	key := namespace + "/" + name
	obj, exists, err := c.informer.GetIndexer().GetByKey(key)
	if err != nil {
		return irsa.Object{}, false, fmt.Errorf("get serviceaccount %s from the cache: %w", key, err)
	}
	if exists {
		if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
			return irsa.Object{Namespace: m.Namespace, Name: m.Name, Annotations: m.Annotations}, true, nil
		}
	}
	// One GET per ServiceAccount however many pods miss it at once. The GET runs under its
	// own budget, detached from the first caller's context, so that caller going away does
	// not fail the others; each caller still stops waiting when its own context ends.
	ch := c.flights.DoChan(key, func() (any, error) {
		liveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.budget)
		defer cancel()
		m, err := c.live.Resource(gvr).Namespace(namespace).Get(liveCtx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return (*metav1.PartialObjectMetadata)(nil), nil
		case err != nil:
			return nil, fmt.Errorf("get serviceaccount %s: %w", key, err)
		}
		return trim(m, c.prefix, nil), nil
	})
	select {
	case <-ctx.Done():
		return irsa.Object{}, false, fmt.Errorf("get serviceaccount %s: %w", key, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return irsa.Object{}, false, r.Err
		}
		m := r.Val.(*metav1.PartialObjectMetadata)
		if m == nil {
			return irsa.Object{}, false, nil
		}
		return irsa.Object{Namespace: m.Namespace, Name: m.Name, Annotations: m.Annotations}, true, nil
	}
}

// EachServiceAccount calls f with the namespace and name of every ServiceAccount in the cache
// (no API call), until f returns false.
func (c *Cache) EachServiceAccount(f func(namespace, name string) bool) {
	for _, obj := range c.informer.GetStore().List() {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			continue
		}
		if !f(m.Namespace, m.Name) {
			return
		}
	}
}
