package trustcheck_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/mapping"
)

// mappingNamespace holds the ServiceAccount-to-role ConfigMap the warn-mode webhook watches.
const mappingNamespace = "irsa-trustcheck-mapping"

// mappingArgs are the flags that make the warn-mode webhook watch the mapping ConfigMap.
func mappingArgs(mode string) []string {
	if mode != "warn" {
		return nil
	}
	return []string{"--watch-config-map", "--config-map-namespace=" + mappingNamespace}
}

// TestMappedRoleIsChecked: a ConfigMap edit that maps a ServiceAccount to a role that does
// not trust it gets the same Event and metric as the role annotation would; a trusted mapping
// and a ServiceAccount whose own annotation wins get none.
func TestMappedRoleIsChecked(t *testing.T) {
	ctx := context.Background()
	namespace(ctx, t, "none", mappingNamespace)
	ns := namespace(ctx, t, "none", "mapped-team")
	mappedRole := "arn:aws:iam::123456789012:role/MappedTrusted"
	suite.iam.PutRole(mappedRole, minimal(mappedRole, ns, "trusted"))
	for _, sa := range []*corev1.ServiceAccount{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "untrusted"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "trusted"}},
		serviceAccount(ns, "annotated", mappedRole), // its own role; the namespace has no trust webhook
	} {
		if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := notTrusted(t)
	doc := fmt.Sprintf(`{"%[1]s/untrusted":{"RoleARN":%[2]q},"%[1]s/trusted":{"RoleARN":%[3]q},"%[1]s/annotated":{"RoleARN":%[2]q}}`, ns, trustedRole, mappedRole)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: mapping.DefaultConfigMapName}, Data: map[string]string{mapping.DataKey: doc}}
	if _, err := suite.cs.CoreV1().ConfigMaps(mappingNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := suite.cs.CoreV1().ConfigMaps(mappingNamespace).Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	}()

	e := waitEvent(t, ns, "untrusted", "TrustPolicyMismatch")
	for _, want := range []string{"mapped by ConfigMap " + mappingNamespace + "/" + mapping.DefaultConfigMapName, "does not trust system:serviceaccount:" + ns + ":untrusted"} {
		if !strings.Contains(e, want) {
			t.Errorf("event %q does not say %q", e, want)
		}
	}
	// The Event is read in the tenant's namespace: its own failed claim, not what the role trusts.
	if want := `does not accept sub "system:serviceaccount:` + ns + `:untrusted"`; !strings.Contains(e, want) || strings.Contains(e, "team-a") {
		t.Errorf("event %q should say %q and not quote the policy (team-a)", e, want)
	}
	// Checks run in order (annotated, trusted, untrusted): the others are done by now.
	for _, name := range []string{"trusted", "annotated"} {
		if e := trustEvents(ctx, ns, name); len(e) > 0 {
			t.Errorf("%s: events %q, want none", name, e)
		}
	}
	if after := notTrusted(t); after != before+1 {
		t.Errorf(`irsa_webhook_trust_checks_total{verdict="not_trusted"} went from %v to %v, want +1`, before, after)
	}
}

// notTrusted reads the warn-mode webhook's not_trusted counter.
func notTrusted(t *testing.T) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := suite.webhooks["warn"]
	_, body, err := webhookproc.GetAll(ctx, p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	const series = `irsa_webhook_trust_checks_total{verdict="not_trusted"} `
	for line := range strings.SplitSeq(body, "\n") {
		if v, ok := strings.CutPrefix(line, series); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}
