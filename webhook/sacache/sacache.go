// Package sacache finds ServiceAccounts for the pod handler: from an informer cache that
// holds only what IRSA needs, and on a miss (a pod created right after its
// ServiceAccount, before the watch delivered it) from one bounded live GET.
package sacache

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// DefaultLiveLookupBudget bounds the live GET made on a cache miss.
const DefaultLiveLookupBudget = time.Second

// NewObject returns the object type the cache holds: ServiceAccount metadata only, so the
// watch transfers and stores no secrets or image pull secrets.
func NewObject() *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{}
	o.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ServiceAccount"))
	return o
}

// CacheOptions configures the manager's cache for ServiceAccounts: metadata only, trimmed
// by Transform, shared without deep copies (readers must not modify what they get).
func CacheOptions(prefix string) (client.Object, cache.ByObject) {
	t := true
	return NewObject(), cache.ByObject{Transform: Transform(prefix), UnsafeDisableDeepCopy: &t}
}

// Transform keeps name, namespace, resourceVersion and the annotations under prefix; at
// 100,000 ServiceAccounts the difference to a full object is tens of megabytes.
func Transform(prefix string) toolscache.TransformFunc {
	p := prefix + "/"
	return func(obj any) (any, error) {
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return obj, nil // tombstones and other types pass through
		}
		return trim(m, p), nil
	}
}

func trim(m *metav1.PartialObjectMetadata, prefix string) *metav1.PartialObjectMetadata {
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta}
	out.Name, out.Namespace, out.ResourceVersion, out.UID = m.Name, m.Namespace, m.ResourceVersion, m.UID
	for k, v := range m.Annotations {
		if strings.HasPrefix(k, prefix) {
			if out.Annotations == nil {
				out.Annotations = make(map[string]string, 2)
			}
			out.Annotations[k] = v
		}
	}
	return out
}

// Lookup implements the pod handler's ServiceAccounts.
type Lookup struct {
	cache  client.Reader
	live   client.Reader
	budget time.Duration
	prefix string
}

// NewLookup reads from cache, then on a miss from live within budget.
func NewLookup(cache, live client.Reader, budget time.Duration, prefix string) *Lookup {
	return &Lookup{cache: cache, live: live, budget: budget, prefix: prefix + "/"}
}

// ServiceAccount returns the ServiceAccount's IRSA view.
func (l *Lookup) ServiceAccount(ctx context.Context, namespace, name string) (irsa.Object, bool, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	m := NewObject()
	err := l.cache.Get(ctx, key, m)
	if apierrors.IsNotFound(err) && l.live != nil {
		liveCtx, cancel := context.WithTimeout(ctx, l.budget)
		defer cancel()
		m = NewObject()
		if err = l.live.Get(liveCtx, key, m); err == nil {
			m = trim(m, l.prefix)
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		return irsa.Object{}, false, nil
	case err != nil:
		return irsa.Object{}, false, fmt.Errorf("get serviceaccount %s: %w", key, err)
	}
	return irsa.Object{Namespace: m.Namespace, Name: m.Name, Annotations: m.Annotations}, true, nil
}
