package sacache

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestTransformKeepsOnlyWhatIRSANeeds(t *testing.T) {
	in := NewObject()
	in.Name, in.Namespace, in.ResourceVersion, in.UID = "s3-writer", "production", "42", "uid-1"
	in.Labels = map[string]string{"team": "a"}
	in.Annotations = map[string]string{
		"eks.amazonaws.com/role-arn":                       "arn:aws:iam::123456789012:role/S3WriterRole",
		"eks.amazonaws.com/audience":                       "sts.amazonaws.com",
		"kubectl.kubernetes.io/last-applied-configuration": `{"huge":"json"}`,
		"eks.amazonaws.com.evil/role-arn":                  "x",
	}
	in.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	out, err := Transform("eks.amazonaws.com")(in)
	if err != nil {
		t.Fatal(err)
	}
	m := out.(*metav1.PartialObjectMetadata)
	if m.Name != "s3-writer" || m.Namespace != "production" || m.ResourceVersion != "42" || m.UID != "uid-1" {
		t.Errorf("identity lost: %+v", m.ObjectMeta)
	}
	if len(m.Annotations) != 2 || m.Labels != nil || m.ManagedFields != nil {
		t.Errorf("kept too much or too little: annotations %v labels %v managedFields %v", m.Annotations, m.Labels, m.ManagedFields)
	}
	if m.GroupVersionKind().Kind != "ServiceAccount" {
		t.Errorf("GVK lost: %v", m.GroupVersionKind())
	}
	if _, err := Transform("p")("not an object"); err != nil {
		t.Errorf("other types must pass through: %v", err)
	}
}

// reader is a client.Reader test double: a map of objects, or a fixed error.
type reader struct {
	objs  map[client.ObjectKey]map[string]string
	err   error
	calls int
}

func (r *reader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	r.calls++
	if r.err != nil {
		return r.err
	}
	ann, ok := r.objs[key]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, key.Name)
	}
	m := obj.(*metav1.PartialObjectMetadata)
	m.Name, m.Namespace, m.Annotations = key.Name, key.Namespace, ann
	return nil
}

func (r *reader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not used")
}

func TestLookup(t *testing.T) {
	key := client.ObjectKey{Namespace: "production", Name: "s3-writer"}
	role := map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/S3WriterRole", "other/x": "y"}
	tests := []struct {
		name      string
		cache     *reader
		live      *reader
		wantFound bool
		wantErr   bool
		wantLive  int
	}{
		{"cache hit", &reader{objs: map[client.ObjectKey]map[string]string{key: role}}, &reader{}, true, false, 0},
		{"cache miss, live hit (just created)", &reader{}, &reader{objs: map[client.ObjectKey]map[string]string{key: role}}, true, false, 1},
		{"missing everywhere", &reader{}, &reader{}, false, false, 1},
		{"live lookup fails", &reader{}, &reader{err: errors.New("connection refused")}, false, true, 1},
		{"cache fails", &reader{err: errors.New("cache not started")}, &reader{}, false, true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLookup(tc.cache, tc.live, time.Second, "eks.amazonaws.com")
			sa, found, err := l.ServiceAccount(context.Background(), key.Namespace, key.Name)
			if found != tc.wantFound || (err != nil) != tc.wantErr {
				t.Fatalf("found %v err %v; want found %v err %v", found, err, tc.wantFound, tc.wantErr)
			}
			if tc.live.calls != tc.wantLive {
				t.Errorf("live GETs = %d, want %d", tc.live.calls, tc.wantLive)
			}
			if found && (sa.Annotations["eks.amazonaws.com/role-arn"] == "" || sa.Name != "s3-writer") {
				t.Errorf("got %+v", sa)
			}
			if found && tc.wantLive > 0 && len(sa.Annotations) != 1 {
				t.Errorf("live result not trimmed to the prefix: %v", sa.Annotations)
			}
		})
	}
}

