package serviceaccount

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

const (
	roleKey = "eks.amazonaws.com/role-arn"
	audKey  = "eks.amazonaws.com/audience"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	later := now.Add(time.Second)
	checked := checkedAnnotations(map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}, roleKey, audKey)
	ev := Event{Namespace: "team-a", Name: "app", UID: "uid-1", Checked: checked}
	tests := []struct {
		name     string
		uid      types.UID
		ann      map[string]string
		found    bool
		deadline time.Time
		want     decision
	}{
		{name: "stored with the same UID and annotations: written", uid: "uid-1", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}, found: true, deadline: later, want: emitEvent},
		{name: "stored, matching, past the deadline: still written", uid: "uid-1", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}, found: true, deadline: now, want: emitEvent},
		{name: "not stored yet: waits", deadline: later, want: waitEvent},
		{name: "never stored (a forged review): dropped at the deadline", deadline: now, want: dropEvent},
		{name: "another object of that name (forged review naming an existing one): waits", uid: "uid-real", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}, found: true, deadline: later, want: waitEvent},
		{name: "another object of that name at the deadline: dropped", uid: "uid-real", found: true, deadline: now, want: dropEvent},
		{name: "same UID, the role not stored yet (an update in flight): waits", uid: "uid-1", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/Old"}, found: true, deadline: later, want: waitEvent},
		{name: "same UID, another role (attacker text in a forged update): dropped at the deadline", uid: "uid-1", ann: map[string]string{roleKey: "text"}, found: true, deadline: now, want: dropEvent},
		{name: "same UID, an audience the request did not have: waits", uid: "uid-1", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/App", audKey: "x"}, found: true, deadline: later, want: waitEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := decide(ev, tc.deadline, tc.uid, tc.ann, tc.found, now); got != tc.want {
				t.Errorf("decide = %v, want %v", got, tc.want)
			}
		})
	}
}

// storedMap is a ServiceAccount cache by "namespace/name".
type storedMap struct {
	mu   sync.Mutex
	objs map[string]stored
}

type stored struct {
	uid types.UID
	ann map[string]string
}

func (s *storedMap) Stored(ns, name string) (types.UID, map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[ns+"/"+name]
	return o.uid, o.ann, ok
}

type regarding struct {
	ns, name  string
	uid       types.UID
	kind      string
	reason    string
	eventNote string
}

type fakeRecorder struct{ events []regarding }

func (r *fakeRecorder) Eventf(obj runtime.Object, _ runtime.Object, _, reason, _, note string, args ...any) {
	m := obj.(interface {
		GetNamespace() string
		GetName() string
		GetUID() types.UID
	})
	r.events = append(r.events, regarding{m.GetNamespace(), m.GetName(), m.GetUID(), obj.GetObjectKind().GroupVersionKind().Kind, reason, fmt.Sprintf(note, args...)})
}

// TestDeferredEvents: an Event is written once its ServiceAccount is stored, in the
// request's namespace about the object with the request's UID; a forged one is dropped
// at the deadline; the queue is bounded.
func TestDeferredEvents(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := &fakeRecorder{}
	cache := &storedMap{objs: map[string]stored{"kube-system/coredns": {uid: "uid-coredns"}}}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dropped"}, []string{"reason"})
	d := NewDeferredEvents(rec, cache, dropped, logr.Discard())
	d.now = func() time.Time { return now }
	d.max = 3
	role := checkedAnnotations(map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}, roleKey, audKey)
	d.Record(Event{Namespace: "team-a", Name: "app", UID: "uid-app", Checked: role, Type: "Warning", Reason: ReasonMismatch, Note: "real"})
	d.Record(Event{Namespace: "kube-system", Name: "coredns", UID: "uid-forged", Checked: role, Type: "Warning", Reason: ReasonMismatch, Note: "forged"})
	d.Record(Event{Namespace: "team-a", Name: "no-uid", Type: "Warning", Reason: ReasonMismatch, Note: "no uid"})
	d.Record(Event{Namespace: "team-a", Name: "later", UID: "uid-later", Checked: role, Type: "Warning", Reason: ReasonMismatch, Note: "later"})
	d.Record(Event{Namespace: "team-a", Name: "overflow", UID: "uid-overflow", Checked: role, Type: "Warning", Reason: ReasonMismatch, Note: "overflow"})

	d.sweep()
	if len(rec.events) != 0 {
		t.Fatalf("events written before any object was stored: %+v", rec.events)
	}
	cache.mu.Lock()
	cache.objs["team-a/app"] = stored{uid: "uid-app", ann: map[string]string{roleKey: "arn:aws:iam::123456789012:role/App"}}
	cache.mu.Unlock()
	now = now.Add(time.Second)
	d.sweep()
	want := regarding{"team-a", "app", "uid-app", "ServiceAccount", ReasonMismatch, "real"}
	if len(rec.events) != 1 || rec.events[0] != want {
		t.Fatalf("events = %+v, want only %+v", rec.events, want)
	}
	now = now.Add(DefaultEventWait)
	d.sweep()
	if len(rec.events) != 1 {
		t.Errorf("events written for objects never stored: %+v", rec.events[1:])
	}
	if n := len(d.pending); n != 0 {
		t.Errorf("%d events still pending past the deadline", n)
	}
	for reason, want := range map[string]float64{DropNotStored: 3, DropQueueFull: 1} { // forged, no uid, later; overflow
		if got := testutil.ToFloat64(dropped.WithLabelValues(reason)); got != want {
			t.Errorf("dropped{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}
