package sacache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
)

func sa(ns, name string, ann map[string]string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}}
	m.Namespace, m.Name, m.Annotations, m.ResourceVersion, m.UID = ns, name, ann, "42", "uid-1"
	m.Labels = map[string]string{"team": "a"}
	m.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	return m
}

func newFake(objs ...runtime.Object) *metadatafake.FakeMetadataClient {
	scheme := metadatafake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		panic(err)
	}
	return metadatafake.NewSimpleMetadataClient(scheme, objs...)
}

var role = map[string]string{
	"eks.amazonaws.com/role-arn":                       "arn:aws:iam::123456789012:role/S3WriterRole",
	"kubectl.kubernetes.io/last-applied-configuration": `{"huge":"json"}`,
	"eks.amazonaws.com.evil/role-arn":                  "x",
}

func TestTransformKeepsOnlyWhatIRSANeeds(t *testing.T) {
	c, err := New(newFake(), newFake(), "eks.amazonaws.com", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.transform(sa("production", "s3-writer", role))
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	if m.Name != "s3-writer" || m.Namespace != "production" {
		t.Errorf("identity lost: %+v", m)
	}
	if m.UID != "uid-1" {
		t.Errorf("UID lost (the trust check's Events wait for it): %+v", m)
	}
	if m.ResourceVersion != "" || m.Kind != "" {
		t.Errorf("kept fields nothing reads: %+v", m)
	}
	if len(m.Annotations) != 1 || m.Labels != nil || m.ManagedFields != nil {
		t.Errorf("kept too much or too little: annotations %v labels %v managedFields %v", m.Annotations, m.Labels, m.ManagedFields)
	}
	if other, _ := c.transform("tombstone"); other != "tombstone" {
		t.Error("other types must pass through")
	}
}

func TestCache(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := newFake(sa("production", "s3-writer", role))
	c, err := New(client, client, "eks.amazonaws.com", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !c.HasSynced() {
		if time.Now().After(deadline) {
			t.Fatal("never synced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, found, err := c.ServiceAccount(ctx, "production", "s3-writer")
	if err != nil || !found || len(got.Annotations) != 1 || got.Annotations["eks.amazonaws.com/role-arn"] == "" {
		t.Fatalf("cached SA: %+v found %v err %v", got, found, err)
	}
	t.Run("stored: the cache's UID and annotations", func(t *testing.T) {
		uid, ann, found := c.Stored("production", "s3-writer")
		if !found || uid != "uid-1" || len(ann) != 1 {
			t.Errorf("Stored = %q %v %v, want uid-1 with the role annotation", uid, ann, found)
		}
		if _, _, found := c.Stored("production", "nope"); found {
			t.Error("Stored found a ServiceAccount that does not exist")
		}
	})
	t.Run("miss: live GET finds a new SA, trimmed", func(t *testing.T) {
		// Created behind the informer's back: only the live GET can see it.
		if err := client.Tracker().Add(sa("production", "fresh", role)); err != nil {
			t.Fatal(err)
		}
		got, found, err := c.ServiceAccount(ctx, "production", "fresh")
		if err != nil || !found || len(got.Annotations) != 1 {
			t.Fatalf("got %+v found %v err %v", got, found, err)
		}
	})
	t.Run("missing everywhere", func(t *testing.T) {
		if _, found, err := c.ServiceAccount(ctx, "production", "nope"); found || err != nil {
			t.Fatalf("found %v err %v", found, err)
		}
	})
	t.Run("live GET fails", func(t *testing.T) {
		client.PrependReactor("get", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("connection refused")
		})
		if _, found, err := c.ServiceAccount(ctx, "production", "other"); found || err == nil {
			t.Fatalf("found %v err %v; want an error", found, err)
		}
	})
}

// TestConcurrentMissesShareOneGet: many pods of one ServiceAccount missing the cache at once
// (the informer has not seen it yet) cost one live GET, not one per pod; a caller whose own
// context ends stops waiting without failing the others.
func TestConcurrentMissesShareOneGet(t *testing.T) {
	const callers = 50
	live := newFake(sa("production", "burst", role))
	var gets atomic.Int32
	release := make(chan struct{})
	live.PrependReactor("get", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		gets.Add(1)
		<-release // hold the GET until every caller is waiting on it
		return false, nil, nil
	})
	c, err := New(newFake(), live, "eks.amazonaws.com", 5*time.Second) // informer never started: every lookup misses
	if err != nil {
		t.Fatal(err)
	}
	impatient, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.ServiceAccount(impatient, "production", "burst"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose context ended: err %v, want context.Canceled", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, found, err := c.ServiceAccount(context.Background(), "production", "burst")
			if err == nil && (!found || got.Annotations["eks.amazonaws.com/role-arn"] == "") {
				err = fmt.Errorf("found %v, annotations %v", found, got.Annotations)
			}
			errs <- err
		})
	}
	time.Sleep(200 * time.Millisecond) // let the callers join the GET in flight
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d concurrent lookups of one ServiceAccount made %d GETs, want 1", callers+1, n)
	}
}
