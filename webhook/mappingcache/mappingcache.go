// Package mappingcache keeps the ServiceAccount-to-role ConfigMap of package mapping
// current: an informer watches that one ConfigMap (a field selector on its name, in one
// namespace, so neither the watch nor the RBAC rule reaches any other object) and swaps an
// immutable, parsed snapshot on every add, update and delete. Pods read the snapshot
// without a lock; the next pod after an edit sees it, with no restart.
//
// Unlike the reference webhook, deleting the ConfigMap removes the mapping. A document that
// is refused as a whole (not JSON, too large) keeps the previous snapshot, with an error log
// line and a metric: an editing mistake does not take credentials away from running
// workloads' new pods. Malformed entries are skipped one by one (package mapping).
package mappingcache

import (
	"context"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
)

// maxLoggedProblems bounds the log lines one ConfigMap version produces; the rest are counted.
const maxLoggedProblems = 20

// Update results, labels of irsa_webhook_mapping_updates_total.
const (
	ResultApplied  = "applied"  // the snapshot was replaced (some entries may have been skipped)
	ResultRejected = "rejected" // the whole document was refused; the previous snapshot stays
	ResultDeleted  = "deleted"  // the ConfigMap was deleted; the mapping is empty
)

// Metrics of the mapping.
type Metrics struct {
	Entries *prometheus.GaugeVec   // state: applied, skipped, adjusted
	Updates *prometheus.CounterVec // result
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "irsa_webhook_mapping_entries",
			Help: "Entries of the ServiceAccount-to-role ConfigMap in effect, by state: applied, skipped (malformed, left out), adjusted (applied with a correction). Alert on skipped > 0.",
		}, []string{"state"}),
		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "irsa_webhook_mapping_updates_total",
			Help: "Versions of the ServiceAccount-to-role ConfigMap seen, by result: applied, rejected (the whole document was refused; the previous mapping stays), deleted.",
		}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Entries, m.Updates)
	}
	return m
}

// Watcher watches one ConfigMap and holds its parsed mapping.
type Watcher struct {
	// Options are how entries are read; set them before Start.
	Options  mapping.Options
	informer toolscache.SharedIndexInformer
	current  atomic.Pointer[mapping.Mapping]
	log      logr.Logger
	metrics  *Metrics
	onChange func(prev, next *mapping.Mapping)
}

// OnChange registers f, called after each applied ConfigMap version with the previous and
// the new mapping, on the informer's goroutine (so f must return quickly). Call it before
// Start.
func (w *Watcher) OnChange(f func(prev, next *mapping.Mapping)) { w.onChange = f }

// New returns a watcher of ConfigMap name in namespace. Start it (it is a controller-runtime
// Runnable) and gate readiness on HasSynced. It needs get, list and watch on that ConfigMap
// (an RBAC rule with resourceNames: [name] is enough).
func New(client kubernetes.Interface, namespace, name string, log logr.Logger, m *Metrics) *Watcher {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	inf := coreinformers.NewFilteredConfigMapInformer(client, namespace, 0, toolscache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	w := &Watcher{informer: inf, log: log.WithValues("configMap", namespace+"/"+name), metrics: m}
	w.current.Store(&mapping.Mapping{})
	// Errors are impossible before the informer starts.
	_, _ = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.apply(obj) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.ConfigMap)
			n, ok2 := newObj.(*corev1.ConfigMap)
			if ok1 && ok2 && o.ResourceVersion == n.ResourceVersion {
				return // a relist, nothing changed
			}
			w.apply(newObj)
		},
		DeleteFunc: func(any) { w.deleted() },
	})
	return w
}

// Start runs the informer until ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	w.informer.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection: every replica serves pods, so every replica needs the mapping.
func (w *Watcher) NeedLeaderElection() bool { return false }

// HasSynced reports whether the initial list (ConfigMap present or not) has been applied.
func (w *Watcher) HasSynced() bool { return w.informer.HasSynced() }

// Mapping returns the current snapshot; never nil, never modified after it is returned.
func (w *Watcher) Mapping() *mapping.Mapping { return w.current.Load() }

func (w *Watcher) apply(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	m, problems, err := w.Options.FromConfigMap(cm.Data)
	if err != nil {
		w.log.Error(err, "configmap refused; the previous mapping stays in effect", "resourceVersion", cm.ResourceVersion, "entriesInEffect", w.Mapping().Len())
		w.metrics.Updates.WithLabelValues(ResultRejected).Inc()
		return
	}
	skipped, adjusted := 0, 0
	for i, p := range problems {
		if p.Skipped {
			skipped++
		} else {
			adjusted++
		}
		if i < maxLoggedProblems {
			w.log.Info("configmap entry problem", "entry", p.Key, "skipped", p.Skipped, "reason", p.Reason)
		}
	}
	if len(problems) > maxLoggedProblems {
		w.log.Info("configmap entry problems not logged", "count", len(problems)-maxLoggedProblems)
	}
	w.log.Info("configmap mapping applied", "resourceVersion", cm.ResourceVersion, "entries", m.Len(), "skipped", skipped, "adjusted", adjusted)
	w.setGauges(m.Len(), skipped, adjusted)
	w.metrics.Updates.WithLabelValues(ResultApplied).Inc()
	prev := w.current.Swap(m) // last: whoever sees the new mapping also sees its metrics
	if w.onChange != nil {
		w.onChange(prev, m)
	}
}

func (w *Watcher) deleted() {
	w.log.Info("configmap deleted; mapping removed")
	w.setGauges(0, 0, 0)
	w.metrics.Updates.WithLabelValues(ResultDeleted).Inc()
	w.current.Store(&mapping.Mapping{})
}

// Mapped returns the IRSA annotations under prefix that the current mapping gives the
// ServiceAccount ns/name, when it maps it to a role: the trust check's view of a
// ServiceAccount created after its mapping (serviceaccount.Handler.Mapped).
func (w *Watcher) Mapped(prefix string) func(ns, name string) (map[string]string, bool) {
	return func(ns, name string) (map[string]string, bool) {
		e, ok := w.Mapping().Lookup(ns, name)
		if !ok || e.RoleARN == "" {
			return nil, false
		}
		return e.Annotations(prefix), true
	}
}

func (w *Watcher) setGauges(applied, skipped, adjusted int) {
	w.metrics.Entries.WithLabelValues("applied").Set(float64(applied))
	w.metrics.Entries.WithLabelValues("skipped").Set(float64(skipped))
	w.metrics.Entries.WithLabelValues("adjusted").Set(float64(adjusted))
}

// ServiceAccountSource finds a ServiceAccount's IRSA view (package sacache's Cache is one).
type ServiceAccountSource interface {
	ServiceAccount(ctx context.Context, namespace, name string) (sa irsa.Object, found bool, err error)
}

// ServiceAccounts overlays the mapping on a ServiceAccount source, with the reference's
// precedence (mapping.Mapping.Resolve): the pod path then reads a mapped ServiceAccount
// through the same irsa.ForServiceAccount as an annotated one. A ServiceAccount that does not exist
// is not mapped: the API server refuses pods naming one anyway.
type ServiceAccounts struct {
	Source  ServiceAccountSource
	Watcher *Watcher
	Prefix  string // annotation prefix
}

// ServiceAccount implements the pod handler's ServiceAccounts.
func (s ServiceAccounts) ServiceAccount(ctx context.Context, namespace, name string) (irsa.Object, bool, error) {
	sa, found, err := s.Source.ServiceAccount(ctx, namespace, name)
	if err != nil || !found {
		return sa, found, err
	}
	sa, _ = s.Watcher.Mapping().Resolve(sa, s.Prefix)
	return sa, true, nil
}
