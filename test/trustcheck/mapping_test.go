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
	// Kept: a deleted namespace stays Terminating here (no controller-manager), and the other
	// mapping tests create the ConfigMap in it again.
	namespace(ctx, nil, "none", mappingNamespace)
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
	for _, want := range []string{"mapped by the webhook's ConfigMap: ", "does not trust system:serviceaccount:" + ns + ":untrusted"} {
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

// putMapping creates or replaces the mapping ConfigMap the warn-mode webhook watches, and
// deletes it when the test ends.
func putMapping(t *testing.T, doc string) {
	t.Helper()
	ctx := context.Background()
	namespace(ctx, nil, "none", mappingNamespace)
	cms := suite.cs.CoreV1().ConfigMaps(mappingNamespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: mapping.DefaultConfigMapName}, Data: map[string]string{mapping.DataKey: doc}}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cms.Delete(ctx, cm.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})
}

// TestMappedWildcardIsChecked: a ConfigMap edit whose wildcard entry maps existing
// ServiceAccounts to a role that does not trust them gets each of them the Event and the
// metric; ServiceAccounts the pattern does not match get none, and the role's trust policy is
// fetched once for all of them (the IAM cache bounds what a wildcard costs).
func TestMappedWildcardIsChecked(t *testing.T) {
	ctx := context.Background()
	prefix := unique("wild")
	matched := []string{namespace(ctx, t, "none", prefix+"-a"), namespace(ctx, t, "none", prefix+"-b")}
	other := namespace(ctx, t, "none", unique("tame"))
	role := "arn:aws:iam::123456789012:role/WildRole-" + prefix
	suite.iam.PutRole(role, minimal(role, "team-a", "app"))
	for _, ns := range append([]string{other}, matched...) {
		if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "wildsa"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := notTrusted(t)
	putMapping(t, fmt.Sprintf(`{"%s-*/wildsa":{"RoleARN":%q}}`, prefix, role))

	for _, ns := range matched {
		e := waitEvent(t, ns, "wildsa", "TrustPolicyMismatch")
		for _, want := range []string{"mapped by the webhook's ConfigMap: ", "does not trust system:serviceaccount:" + ns + ":wildsa"} {
			if !strings.Contains(e, want) {
				t.Errorf("%s: event %q does not say %q", ns, e, want)
			}
		}
	}
	// The checks of one edit run in order, and "other" sorts before the matched ones... or
	// not at all: wait for the metric, then look.
	waitFor(t, "two not_trusted checks", func() bool { return notTrusted(t) >= before+2 })
	if e := trustEvents(ctx, other, "wildsa"); len(e) > 0 {
		t.Errorf("%s/wildsa, which the pattern does not match: events %q", other, e)
	}
	if after := notTrusted(t); after != before+2 {
		t.Errorf(`irsa_webhook_trust_checks_total{verdict="not_trusted"} went from %v to %v, want +2`, before, after)
	}
	if calls := suite.iam.Calls("WildRole-" + prefix); calls != 1 {
		t.Errorf("GetRole calls for the wildcard's role = %d, want 1 for both ServiceAccounts", calls)
	}
}

// TestMappedServiceAccountCreatedLater: a ServiceAccount created after the ConfigMap maps it
// (exactly or through a wildcard) to a role that does not trust it gets the warning, the Event
// and the metric at creation, as an annotated one does.
func TestMappedServiceAccountCreatedLater(t *testing.T) {
	ctx := context.Background()
	ns := unique("later")
	putMapping(t, fmt.Sprintf(`{"%[1]s/exact":{"RoleARN":%[2]q},"%[1]s*/wild":{"RoleARN":%[2]q}}`, ns, trustedRole))
	namespace(ctx, t, "warn", ns)
	cs, warnings := client()
	// Until the webhook has read the mapping, a dry run gets no warning.
	waitFor(t, "the mapping to reach the webhook", func() bool {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "exact"}}
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && len(warnings.Take("")) > 0
	})
	for _, name := range []string{"exact", "wild"} {
		t.Run(name, func(t *testing.T) {
			before := notTrusted(t)
			if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			w := strings.Join(warnings.Take(""), "\n")
			for _, want := range []string{"mapped by the webhook's ConfigMap: ", "does not trust system:serviceaccount:" + ns + ":" + name} {
				if !strings.Contains(w, want) {
					t.Errorf("warning %q does not say %q", w, want)
				}
			}
			if e := waitEvent(t, ns, name, "TrustPolicyMismatch"); !strings.Contains(e, "mapped by the webhook's ConfigMap") {
				t.Errorf("event %q does not name the ConfigMap", e)
			}
			if after := notTrusted(t); after != before+1 {
				t.Errorf(`irsa_webhook_trust_checks_total{verdict="not_trusted"} went from %v to %v, want +1`, before, after)
			}
		})
	}
	t.Run("an unmapped ServiceAccount is not checked", func(t *testing.T) {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "unmapped"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := warnings.Take(""); len(w) > 0 {
			t.Errorf("warnings %q", w)
		}
	})
}
