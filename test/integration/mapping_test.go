package integration_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
)

// mappingNamespace holds the webhook's ServiceAccount-to-role ConfigMap: the shared webhook
// runs with --watch-config-map --config-map-namespace=mappingNamespace.
const mappingNamespace = "irsa-it-mapping"

const (
	mappedRoleA = "arn:aws:iam::123456789012:role/MappedA"
	mappedRoleB = "arn:aws:iam::123456789012:role/MappedB"
	mappedRoleC = "arn:aws:iam::123456789012:role/team/MappedC"
	// mappingWait bounds how long an edit may take to reach the webhook (a watch event).
	mappingWait = 30 * time.Second
)

// roleOfNextPod creates a dry-run pod running as sa and returns its AWS_ROLE_ARN ("" if none).
func roleOfNextPod(t *testing.T, cs kubernetes.Interface, ns, sa string) (string, *corev1.Pod) {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Create(t.Context(), simplePod("mapped", sa), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run pod %s/%s: %v", ns, sa, err)
	}
	role, _ := envValue(p.Spec.Containers[0], irsa.EnvRoleARN)
	return role, p
}

// awaitRole polls with dry-run pods until a pod running as ns/sa gets role ("" = no role),
// and returns that pod and how long it took.
func awaitRole(t *testing.T, cs kubernetes.Interface, ns, sa, role string) (*corev1.Pod, time.Duration) {
	t.Helper()
	began := time.Now()
	for {
		got, p := roleOfNextPod(t, cs, ns, sa)
		if got == role {
			return p, time.Since(began)
		}
		if time.Since(began) > mappingWait {
			t.Fatalf("pod running as %s/%s gets role %q after %v, want %q%s", ns, sa, got, mappingWait, role, suite.webhook.LogTail())
		}
		time.Sleep(pollEvery)
	}
}

func putMapping(t *testing.T, cs kubernetes.Interface, doc string) {
	t.Helper()
	cms := cs.CoreV1().ConfigMaps(mappingNamespace)
	cm, err := cms.Get(t.Context(), mapping.DefaultConfigMapName, metav1.GetOptions{})
	if err != nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: mapping.DefaultConfigMapName}}
		cm.Data = map[string]string{mapping.DataKey: doc}
		if _, err := cms.Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create the mapping ConfigMap: %v", err)
		}
		return
	}
	cm.Data = map[string]string{mapping.DataKey: doc}
	if _, err := cms.Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update the mapping ConfigMap: %v", err)
	}
}

func deleteMapping(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	err := cs.CoreV1().ConfigMaps(mappingNamespace).Delete(context.WithoutCancel(t.Context()), mapping.DefaultConfigMapName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete the mapping ConfigMap: %v", err)
	}
}

// TestConfigMapMapping drives the reference webhook's ConfigMap (as kOps writes it) through a
// real API server: pods of mapped ServiceAccounts get the mapped role and token settings,
// the ServiceAccount's own role annotation wins, namespace wildcards work, every edit applies
// to the next pod without a restart, and deleting the ConfigMap removes the mapping.
func TestConfigMapMapping(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "map")
	wild := newNamespace(t, cs, "mapwild") // irsa-it-mapwild-xxxxx
	createServiceAccount(t, cs, ns, "mapped", nil)
	createServiceAccount(t, cs, ns, "annotated", withRole(mappedRoleB))
	createServiceAccount(t, cs, wild, "mapped", nil)
	defer deleteMapping(t, cs)

	putMapping(t, cs, fmt.Sprintf(`{"%[1]s/mapped":{"RoleARN":%[3]q,"Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":7200},`+
		`"%[1]s/annotated":{"RoleARN":%[3]q},`+
		`"irsa-it-mapwild-*/mapped":{"RoleARN":%[4]q},`+
		`"no-slash":{"RoleARN":%[3]q}}`, ns, wild, mappedRoleA, mappedRoleC))

	t.Run("a mapped ServiceAccount's pods get the entry's role and token settings", func(t *testing.T) {
		p, took := awaitRole(t, cs, ns, "mapped", mappedRoleA)
		t.Logf("ConfigMap created -> first mapped pod: %v", took.Round(time.Millisecond))
		if v, _ := envValue(p.Spec.Containers[0], irsa.EnvSTSRegionalEndpoints); v != "regional" {
			t.Errorf("%s = %q, want regional (UseRegionalSTS: true)", irsa.EnvSTSRegionalEndpoints, v)
		}
		tv := tokenVolume(p)
		if tv == nil || tv.Audience != "amazonaws.com" || tv.ExpirationSeconds == nil || *tv.ExpirationSeconds != 7200 {
			t.Errorf("token volume = %+v, want audience amazonaws.com, 7200 s", tv)
		}
	})
	t.Run("the ServiceAccount's role annotation wins", func(t *testing.T) {
		if got, _ := roleOfNextPod(t, cs, ns, "annotated"); got != mappedRoleB {
			t.Errorf("role = %q, want the annotation's %q", got, mappedRoleB)
		}
	})
	t.Run("a namespace wildcard maps the ServiceAccount in matching namespaces", func(t *testing.T) {
		if got, _ := roleOfNextPod(t, cs, wild, "mapped"); got != mappedRoleC {
			t.Errorf("role in %s = %q, want %q", wild, got, mappedRoleC)
		}
	})
	t.Run("the malformed entry is reported in the metrics", func(t *testing.T) {
		fams := scrape(t, suite.webhook)
		if m := metric(fams, "irsa_webhook_mapping_entries", "state", "skipped"); m.GetGauge().GetValue() != 1 {
			t.Errorf(`irsa_webhook_mapping_entries{state="skipped"} = %v, want 1`, m)
		}
		if m := metric(fams, "irsa_webhook_mapping_entries", "state", "applied"); m.GetGauge().GetValue() != 3 {
			t.Errorf(`irsa_webhook_mapping_entries{state="applied"} = %v, want 3`, m)
		}
	})
	t.Run("an edit applies to the next pod, without a restart", func(t *testing.T) {
		putMapping(t, cs, fmt.Sprintf(`{"%s/mapped":{"RoleARN":%q}}`, ns, mappedRoleB))
		_, took := awaitRole(t, cs, ns, "mapped", mappedRoleB)
		t.Logf("ConfigMap updated -> first pod with the new role: %v", took.Round(time.Millisecond))
		if got, _ := roleOfNextPod(t, cs, wild, "mapped"); got != "" {
			t.Errorf("the removed wildcard entry still maps %s/mapped to %q", wild, got)
		}
	})
	t.Run("a restarted webhook is ready only once it has read the mapping", func(t *testing.T) {
		if err := suite.webhook.Stop(); err != nil {
			t.Fatal(err)
		}
		p, err := webhookproc.Start(suite.webhook.Options())
		if err != nil {
			t.Fatal(err)
		}
		suite.webhook = p
		if err := p.WaitReady(t.Context(), readyTimeout); err != nil {
			t.Fatal(err)
		}
		// The webhook configuration calls this process as soon as it listens; readiness is
		// what a Service would wait for, so the first pod after it must be mapped.
		if got, _ := roleOfNextPod(t, cs, ns, "mapped"); got != mappedRoleB {
			t.Errorf("first pod after readiness: role %q, want %q%s", got, mappedRoleB, p.LogTail())
		}
	})
	t.Run("deleting the ConfigMap removes the mapping", func(t *testing.T) {
		deleteMapping(t, cs)
		_, took := awaitRole(t, cs, ns, "mapped", "")
		t.Logf("ConfigMap deleted -> first pod without a role: %v", took.Round(time.Millisecond))
		if got, _ := roleOfNextPod(t, cs, ns, "annotated"); got != mappedRoleB {
			t.Errorf("annotated ServiceAccount: role %q, want %q", got, mappedRoleB)
		}
	})
}
