package serviceaccount

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Event is the Event of one trust check, about the ServiceAccount the admission request
// names: its namespace (the request's), name and UID, and the annotations the check read.
type Event struct {
	Namespace, Name string
	UID             types.UID
	// Checked are the annotations the check read (role and audience), as the request had them.
	Checked            []Annotation
	Type, Reason, Note string
}

// Annotation is one annotation of an object, or its absence.
type Annotation struct {
	Key, Value string
	Present    bool
}

// checkedAnnotations returns the annotations keys of ann.
func checkedAnnotations(ann map[string]string, keys ...string) []Annotation {
	out := make([]Annotation, len(keys))
	for i, k := range keys {
		v, ok := ann[k]
		out[i] = Annotation{Key: k, Value: v, Present: ok}
	}
	return out
}

// EventSink takes the Events of trust checks. *DeferredEvents is the webhook's.
type EventSink interface {
	Record(e Event)
}

// StoredServiceAccounts reads the webhook's ServiceAccount cache (never the API server):
// the stored object's UID and its annotations under the prefix. *sacache.Cache implements it.
type StoredServiceAccounts interface {
	Stored(namespace, name string) (uid types.UID, annotations map[string]string, found bool)
}

// Defaults of DeferredEvents.
const (
	// DefaultEventWait is how long an Event waits for its ServiceAccount to show up in the
	// cache: a validating webhook answers before the object is stored, and the watch
	// usually delivers it well within a second.
	DefaultEventWait = 15 * time.Second
	// DefaultMaxPendingEvents bounds the queue; past it new Events are dropped (counted).
	DefaultMaxPendingEvents = 1000
	// eventSweepInterval is how often the queue is compared with the cache.
	eventSweepInterval = 250 * time.Millisecond
)

// Reasons an Event is dropped (the label of irsa_webhook_trust_events_dropped_total).
const (
	DropNotStored = "not_stored" // no ServiceAccount with that UID and annotations appeared in time
	DropQueueFull = "queue_full" // DefaultMaxPendingEvents were already waiting
)

// DeferredEvents writes an Event only once the ServiceAccount it describes is stored: the
// webhook's cache holds an object with the request's namespace, name and UID, and with
// the annotations the check read. A review POSTed to the webhook directly (its port is
// reachable by every pod, unauthenticated) names an object that is never stored, so it
// writes nothing; an object etcd later refuses writes nothing either. The queue and the
// wait are bounded; what does not appear in time is dropped and counted.
type DeferredEvents struct {
	recorder EventRecorder
	stored   StoredServiceAccounts
	maxWait  time.Duration
	max      int
	dropped  *prometheus.CounterVec // reason
	log      logr.Logger
	now      func() time.Time

	mu      sync.Mutex
	pending []pending
}

type pending struct {
	Event
	deadline time.Time
}

// NewDeferredEvents returns the queue; run it with Start. dropped has one label, the reason.
func NewDeferredEvents(rec EventRecorder, stored StoredServiceAccounts, dropped *prometheus.CounterVec, log logr.Logger) *DeferredEvents {
	return &DeferredEvents{recorder: rec, stored: stored, maxWait: DefaultEventWait, max: DefaultMaxPendingEvents,
		dropped: dropped, log: log, now: time.Now}
}

// Record queues e until its ServiceAccount is stored. An Event without a UID cannot be
// matched and is dropped.
func (d *DeferredEvents) Record(e Event) {
	d.mu.Lock()
	full := len(d.pending) >= d.max
	if !full && e.UID != "" {
		d.pending = append(d.pending, pending{Event: e, deadline: d.now().Add(d.maxWait)})
	}
	d.mu.Unlock()
	switch {
	case full:
		d.dropped.WithLabelValues(DropQueueFull).Inc()
	case e.UID == "":
		d.dropped.WithLabelValues(DropNotStored).Inc()
	}
}

// Start sweeps the queue until ctx ends (a controller-runtime Runnable).
func (d *DeferredEvents) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(context.Context) { d.sweep() }, eventSweepInterval)
	return nil
}

// NeedLeaderElection: every replica writes the Events of the requests it answered.
func (d *DeferredEvents) NeedLeaderElection() bool { return false }

// sweep writes the Events whose ServiceAccount is stored and drops the expired ones.
func (d *DeferredEvents) sweep() {
	now := d.now()
	var emit []Event
	d.mu.Lock()
	kept := d.pending[:0]
	for _, p := range d.pending {
		uid, ann, found := d.stored.Stored(p.Namespace, p.Name)
		switch decide(p.Event, p.deadline, uid, ann, found, now) {
		case emitEvent:
			emit = append(emit, p.Event)
		case dropEvent:
			d.dropped.WithLabelValues(DropNotStored).Inc()
			d.log.V(1).Info("trust check event dropped: the serviceaccount was not stored in time",
				"namespace", p.Namespace, "serviceAccount", p.Name, "uid", p.UID, "reason", p.Reason)
		default:
			kept = append(kept, p)
		}
	}
	clear(d.pending[len(kept):]) // release the notes of the Events that left
	d.pending = kept
	d.mu.Unlock()
	for _, e := range emit {
		sa := &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name, UID: e.UID},
		}
		d.recorder.Eventf(sa, nil, e.Type, e.Reason, eventAction, "%s", e.Note)
	}
}

type decision int

const (
	waitEvent decision = iota
	emitEvent
	dropEvent
)

// decide is the rule of DeferredEvents: write the Event once the cache holds the
// ServiceAccount with the Event's UID and the annotations the check read; drop it at its
// deadline; wait otherwise (the watch has not delivered the object yet, or an update of
// it; another object of the same name is an older one, or a forged review's target).
func decide(e Event, deadline time.Time, uid types.UID, annotations map[string]string, found bool, now time.Time) decision {
	if found && uid == e.UID && checkedAnnotationsMatch(e.Checked, annotations) {
		return emitEvent
	}
	if !now.Before(deadline) {
		return dropEvent
	}
	return waitEvent
}

// checkedAnnotationsMatch: the stored object has each checked annotation with the same
// value, and none that the request did not have.
func checkedAnnotationsMatch(checked []Annotation, stored map[string]string) bool {
	for _, a := range checked {
		if v, ok := stored[a.Key]; ok != a.Present || v != a.Value {
			return false
		}
	}
	return true
}
