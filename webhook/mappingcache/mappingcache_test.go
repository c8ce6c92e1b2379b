package mappingcache

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(controlplane.Main(m, controlplane.Options{}, func(c *controlplane.ControlPlane) { cp = c }))
}

const (
	roleA = "arn:aws:iam::123456789012:role/a"
	roleB = "arn:aws:iam::123456789012:role/b"
	// watcher is the user the watcher runs as: it may only read the one ConfigMap.
	watcherUser = "irsa-mapping-watcher"
	waitFor     = 30 * time.Second
)

// eventually polls cond until it returns nil or waitFor passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, waitFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// roleOf returns what the current snapshot maps ns/sa to, or "" and an error.
func roleOf(w *Watcher, ns, sa string) (string, error) {
	e, ok := w.Mapping().Lookup(ns, sa)
	if !ok {
		return "", fmt.Errorf("%s/%s not mapped", ns, sa)
	}
	return e.RoleARN, nil
}

func wantRole(w *Watcher, ns, sa, role string) func() error {
	return func() error {
		got, err := roleOf(w, ns, sa)
		if err != nil {
			return err
		}
		if got != role {
			return fmt.Errorf("%s/%s mapped to %s, want %s", ns, sa, got, role)
		}
		return nil
	}
}

func configMap(ns, name, doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{mapping.DataKey: doc}}
}

// TestWatcher drives the ConfigMap through its life on a real API server, with the watcher
// running as a user whose only permission is reading that one ConfigMap.
func TestWatcher(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(cp.Config())
	const ns = "irsa-mapping"
	for _, n := range []string{ns, "other"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	grantReadOf(ctx, t, admin, ns, mapping.DefaultConfigMapName)
	userCfg, err := cp.UserConfig(watcherUser, nil)
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics(nil)
	w := New(kubernetes.NewForConfigOrDie(userCfg), ns, mapping.DefaultConfigMapName, logr.Discard(), metrics)
	done := make(chan struct{})
	go func() { _ = w.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// No ConfigMap yet: synced, and nothing mapped.
	eventually(t, "initial sync without a ConfigMap", func() error {
		if !w.HasSynced() {
			return fmt.Errorf("not synced")
		}
		return nil
	})
	if n := w.Mapping().Len(); n != 0 {
		t.Fatalf("%d entries before the ConfigMap exists", n)
	}

	cms := admin.CoreV1().ConfigMaps(ns)
	// Decoys: another ConfigMap in the namespace, and one of the same name elsewhere.
	if _, err := cms.Create(ctx, configMap(ns, "decoy", `{"decoy/sa":{"RoleARN":"`+roleA+`"}}`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps("other").Create(ctx, configMap("other", mapping.DefaultConfigMapName, `{"decoy/sa":{"RoleARN":"`+roleA+`"}}`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("create applies the entries, wildcards included, and skips a malformed one", func(t *testing.T) {
		doc := `{"app/sa":{"RoleARN":"` + roleA + `"},"test-*/sa":{"RoleARN":"` + roleB + `"},"bad":{"RoleARN":"` + roleA + `"}}`
		if _, err := cms.Create(ctx, configMap(ns, mapping.DefaultConfigMapName, doc), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "exact entry", wantRole(w, "app", "sa", roleA))
		eventually(t, "wildcard entry", wantRole(w, "test-42", "sa", roleB))
		if got := testutil.ToFloat64(metrics.Entries.WithLabelValues("skipped")); got != 1 {
			t.Errorf("skipped gauge = %v, want 1", got)
		}
		if got := testutil.ToFloat64(metrics.Entries.WithLabelValues("applied")); got != 2 {
			t.Errorf("applied gauge = %v, want 2", got)
		}
		if _, err := roleOf(w, "decoy", "sa"); err == nil {
			t.Error("an entry of another ConfigMap was applied")
		}
	})

	t.Run("update applies at once and drops removed entries", func(t *testing.T) {
		update(ctx, t, admin, ns, `{"app/sa":{"RoleARN":"`+roleB+`"}}`)
		eventually(t, "changed role", wantRole(w, "app", "sa", roleB))
		if _, err := roleOf(w, "test-42", "sa"); err == nil {
			t.Error("a removed wildcard entry still applies")
		}
	})

	t.Run("an unparseable document keeps the previous mapping", func(t *testing.T) {
		before := testutil.ToFloat64(metrics.Updates.WithLabelValues(ResultRejected))
		update(ctx, t, admin, ns, `{"app/sa":`)
		eventually(t, "rejection counted", func() error {
			if testutil.ToFloat64(metrics.Updates.WithLabelValues(ResultRejected)) == before {
				return fmt.Errorf("no rejection counted")
			}
			return nil
		})
		if err := wantRole(w, "app", "sa", roleB)(); err != nil {
			t.Error(err)
		}
	})

	t.Run("delete removes the mapping", func(t *testing.T) {
		if err := cms.Delete(ctx, mapping.DefaultConfigMapName, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "mapping removed", func() error {
			if n := w.Mapping().Len(); n != 0 {
				return fmt.Errorf("%d entries", n)
			}
			return nil
		})
		if got := testutil.ToFloat64(metrics.Updates.WithLabelValues(ResultDeleted)); got != 1 {
			t.Errorf("deleted counter = %v, want 1", got)
		}
	})

	t.Run("re-create applies again", func(t *testing.T) {
		if _, err := cms.Create(ctx, configMap(ns, mapping.DefaultConfigMapName, `{"app/sa":{"RoleARN":"`+roleA+`"}}`), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "re-created entry", wantRole(w, "app", "sa", roleA))
	})

	t.Run("the overlay maps existing ServiceAccounts only, annotations win", func(t *testing.T) {
		p := irsa.DefaultAnnotationPrefix
		src := fakeSource{
			"app/sa":    {Namespace: "app", Name: "sa"},
			"app/owner": {Namespace: "app", Name: "owner", Annotations: map[string]string{irsa.Key(p, irsa.RoleARNAnnotation): roleB}},
		}
		update(ctx, t, admin, ns, `{"app/sa":{"RoleARN":"`+roleA+`"},"app/owner":{"RoleARN":"`+roleA+`"},"app/ghost":{"RoleARN":"`+roleA+`"}}`)
		eventually(t, "three entries", func() error {
			if n := w.Mapping().Len(); n != 3 {
				return fmt.Errorf("%d entries", n)
			}
			return nil
		})
		o := ServiceAccounts{Source: src, Watcher: w, Prefix: p}
		for _, tc := range []struct {
			name      string
			wantFound bool
			wantRole  string
		}{{"sa", true, roleA}, {"owner", true, roleB}, {"ghost", false, ""}} {
			sa, found, err := o.ServiceAccount(ctx, "app", tc.name)
			if err != nil || found != tc.wantFound || sa.Annotations[irsa.Key(p, irsa.RoleARNAnnotation)] != tc.wantRole {
				t.Errorf("%s: %+v found %v err %v, want found %v role %q", tc.name, sa, found, err, tc.wantFound, tc.wantRole)
			}
		}
	})
}

type fakeSource map[string]irsa.Object

func (f fakeSource) ServiceAccount(_ context.Context, ns, name string) (irsa.Object, bool, error) {
	sa, ok := f[ns+"/"+name]
	return sa, ok, nil
}

func update(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, doc string) {
	t.Helper()
	cms := admin.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(ctx, mapping.DefaultConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{mapping.DataKey: doc}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// grantReadOf gives watcherUser get, list and watch on one ConfigMap by name, nothing else:
// what the chart's Role grants.
func grantReadOf(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, name string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mapping-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{name}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mapping-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: watcherUser}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
