package trustcheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/jwtclaims"
)

// namespace creates a namespace whose label picks the webhook in the given mode. With t, it
// is deleted when the test ends.
func namespace(ctx context.Context, t *testing.T, mode, name string) string {
	_, err := suite.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{modeLabel: mode}}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		if t != nil {
			t.Fatal(err)
		}
		panic(err)
	}
	if t != nil {
		t.Cleanup(func() { _ = suite.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	return name
}

func waitCalled(ctx context.Context, ns string) error {
	cs, warnings := client()
	sa := serviceAccount(ns, "probe", trustedRole)
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if len(warnings.Take("")) > 0 || apierrors.IsForbidden(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the API server never called the trust check")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// client returns a clientset whose warnings are collected (client-go's warning handler).
func client() (*kubernetes.Clientset, *controlplane.Warnings) { return suite.h.WarningClient() }

func serviceAccount(ns, name, role string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Annotations: map[string]string{"eks.amazonaws.com/role-arn": role}}}
}

// trustEvents lists the trust check's events about a ServiceAccount.
func trustEvents(ctx context.Context, ns, name string) []string {
	list, err := suite.cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{"list events: " + err.Error()}
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "ServiceAccount" && e.Regarding.Name == name && strings.HasPrefix(e.Reason, "TrustPolicy") {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return out
}

// waitEvent polls until an event with the reason exists, or the deadline.
func waitEvent(t *testing.T, ns, name, reason string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		for _, e := range trustEvents(ctx, ns, name) {
			if strings.HasPrefix(e, reason+":") {
				return e
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event for %s/%s; events: %q", reason, ns, name, trustEvents(context.Background(), ns, name))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestTrustedServiceAccount(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"warn", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			ns := namespace(ctx, t, mode, "trusted-"+mode)
			role := "arn:aws:iam::123456789012:role/Trusted-" + mode
			suite.iam.PutRole(role, minimal(role, ns, "app"))
			cs, warnings := client()
			if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", role), metav1.CreateOptions{}); err != nil {
				t.Fatalf("trusted ServiceAccount refused: %v", err)
			}
			if w := warnings.Take(""); len(w) > 0 {
				t.Errorf("trusted ServiceAccount got warnings %q", w)
			}
			if e := trustEvents(ctx, ns, "app"); len(e) > 0 {
				t.Errorf("trusted ServiceAccount got events %q", e)
			}
		})
	}
}

// TestWrongNamespaceWarnsAndRecordsEvent: trustedRole trusts team-a/app only. A tenant
// creating team-b/app with it is told, in the warning and the Event, which of its own claims
// failed with the values it sent, and nothing of the policy (not the namespace and name it
// trusts); the webhook's debug log has the full finding.
func TestWrongNamespaceWarnsAndRecordsEvent(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "team-b")
	cs, warnings := client()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{}); err != nil {
		t.Fatalf("warn mode must allow: %v", err)
	}
	w := warnings.Take("")
	want := `does not accept sub "system:serviceaccount:team-b:app"`
	if len(w) != 1 || !strings.Contains(w[0], want) || !strings.Contains(w[0], "does not trust") {
		t.Fatalf("warnings = %q, want one saying %q", w, want)
	}
	e := waitEvent(t, ns, "app", "TrustPolicyMismatch")
	if !strings.Contains(e, want) {
		t.Errorf("event %q does not explain the mismatch", e)
	}
	for _, text := range []string{w[0], e} {
		for _, secret := range []string{"team-a", "oidc-provider/", "StringEquals", "statement"} {
			if strings.Contains(text, secret) {
				t.Errorf("the tenant sees %q of the role's trust policy: %q", secret, text)
			}
		}
	}
	waitLog(t, suite.webhooks["warn"].LogPath(), `sub StringEquals \"system:serviceaccount:team-a:app\" does not match \"system:serviceaccount:team-b:app\"`)
	// `kubectl describe serviceaccount` finds Events by the object's UID: the Event must name
	// it. (A validating webhook sees the UID the API server assigned before storing.)
	sa, err := suite.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := suite.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(sa.UID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) > 0 && list.Items[0].Reason == "TrustPolicyMismatch" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TrustPolicyMismatch Event names the ServiceAccount's UID %s (as kubectl describe looks them up)", sa.UID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTenantCannotReadOtherPolicies: with dry runs, a tenant names roles of the account it
// may not read. A role that trusts other principals (another cluster's provider, a user)
// and a role that does not exist give the same answer, which quotes none of them.
func TestTenantCannotReadOtherPolicies(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "prober")
	const (
		secretRole   = "arn:aws:iam::123456789012:role/PaymentsAdmin"
		missingRole  = "arn:aws:iam::123456789012:role/NoSuchRole"
		otherCluster = "oidc.eks.eu-west-1.amazonaws.com/id/0THERC1USTER"
	)
	suite.iam.PutRole(secretRole, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/payments-admin"},"Action":"sts:AssumeRole"},
		{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/`+otherCluster+`"},"Action":"sts:AssumeRoleWithWebIdentity",
		 "Condition":{"StringEquals":{"`+otherCluster+`:sub":"system:serviceaccount:payments:billing"}}}]}`)
	answer := func(role string) string {
		cs, warnings := client()
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "probe", role), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		w := warnings.Take("")
		if len(w) != 1 {
			t.Fatalf("role %s: warnings %q, want one", role, w)
		}
		for _, secret := range []string{"payments", "0THERC1USTER", "eu-west-1", "user/", "statement"} {
			if strings.Contains(w[0], secret) {
				t.Errorf("the tenant sees %q of the role's trust policy: %q", secret, w[0])
			}
		}
		return strings.ReplaceAll(w[0], role, "ROLE")
	}
	secret, missing := answer(secretRole), answer(missingRole)
	if secret != missing {
		t.Errorf("a role that does not trust this cluster and a missing role are told apart:\n %q\n %q", secret, missing)
	}
	if !strings.Contains(missing, "does not accept tokens from the OIDC provider") {
		t.Errorf("answer %q does not name the claim that failed", missing)
	}
	waitLog(t, suite.webhooks["warn"].LogPath(), "payments-admin")
}

func TestEnforceDenies(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "enforce", "team-c")
	_, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `does not accept sub "system:serviceaccount:team-c:app"`) || strings.Contains(err.Error(), "team-a") {
		t.Fatalf("err = %v, want Forbidden naming the failed claim, not the policy's", err)
	}
	if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Get(ctx, "app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("denied ServiceAccount exists: %v", err)
	}
	// No Event: Events are written only about ServiceAccounts that get stored (so a review
	// POSTed straight to the webhook writes none, see TestForgedReviewWritesNoEvent); the
	// denial itself tells the user.

	t.Run("a role change on update is checked", func(t *testing.T) {
		sa, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sa.Annotations = map[string]string{"eks.amazonaws.com/role-arn": trustedRole}
		if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("update err = %v, want Forbidden", err)
		}
	})
	t.Run("a role that does not exist is denied", func(t *testing.T) {
		_, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "ghost", "arn:aws:iam::123456789012:role/Ghost"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err = %v, want Forbidden: role does not exist", err)
		}
	})
}

func TestDryRunRecordsNoEvent(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "team-d")
	cs, warnings := client()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "app", trustedRole), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.Take(""); len(w) != 1 {
		t.Fatalf("dry run: warnings %q, want the mismatch", w)
	}
	// A real create right after records an event: when it shows, the dry run's would have too.
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, "real", trustedRole), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ns, "real", "TrustPolicyMismatch")
	if e := trustEvents(ctx, ns, "app"); len(e) > 0 {
		t.Errorf("dry run recorded events %q", e)
	}
}

func TestIAMFaultsNeverBlock(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "enforce", "team-e")
	for i, fault := range []struct {
		name  string
		apply func()
		clear func()
	}{
		{"down", suite.iam.Down, func() {
			if err := suite.iam.Up(); err != nil {
				t.Fatal(err)
			}
		}},
		{"slower than the deadline", func() { suite.iam.SetDelay(10 * time.Second) }, func() { suite.iam.SetDelay(0) }},
		{"throttling", func() { suite.iam.SetFault("Throttling") }, func() { suite.iam.SetFault("") }},
	} {
		t.Run(fault.name, func(t *testing.T) {
			fault.apply()
			defer fault.clear()
			cs, warnings := client()
			// A role not asked for before, so no cached answer hides the fault.
			role := fmt.Sprintf("arn:aws:iam::123456789012:role/Uncached%d", i)
			began := time.Now()
			_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, fmt.Sprintf("sa-%d", i), role), metav1.CreateOptions{})
			took := time.Since(began)
			if err != nil {
				t.Fatalf("IAM %s must not block (enforce mode, not fail-closed): %v", fault.name, err)
			}
			if took > checkTimeout+2*time.Second {
				t.Errorf("admission took %s, past the %s deadline", took, checkTimeout)
			}
			if w := warnings.Take(""); len(w) != 1 || !strings.Contains(w[0], "not verified") {
				t.Errorf("warnings = %q, want one saying trust was not verified", w)
			}
		})
	}
}

// TestTokenClosesTheLoop: the token the kubelet would project for a ServiceAccount, checked
// by `irsa-webhook trust check` against the policy `irsa-webhook trust policy` wrote for it,
// is trusted; against another ServiceAccount's policy it is not.
func TestTokenClosesTheLoop(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "loop")
	if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := suite.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := jwtclaims.Decode(tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	// What STS would check, taken from the token itself.
	parts := strings.Split(c.Subject, ":") // system:serviceaccount:NS:NAME
	if len(parts) != 4 || len(c.Audience) != 1 {
		t.Fatalf("unexpected claims %+v", c)
	}
	tokenArgs := []string{"--role-arn", trustedRole, "--issuer", c.Issuer, "--namespace", parts[2], "--service-account", parts[3], "--audience", c.Audience[0]}
	policy, err := exec.Command(suite.binary, append([]string{"trust", "policy"}, tokenArgs...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(t.TempDir(), "own.json")
	other := filepath.Join(t.TempDir(), "other.json")
	writeFile(t, own, string(policy))
	writeFile(t, other, minimal(trustedRole, "team-a", "app"))
	for _, tc := range []struct {
		file     string
		wantCode int
	}{{own, 0}, {other, 1}} {
		cmd := exec.Command(suite.binary, append([]string{"trust", "check", "--policy-file", tc.file}, tokenArgs...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.wantCode {
			t.Errorf("trust check against %s: exit %d, want %d:\n%s", filepath.Base(tc.file), code, tc.wantCode, out)
		}
	}
}

// waitLog polls a webhook's log until a line holds text.
func waitLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook log %s never held %q (%v)", path, text, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAudit runs `irsa-webhook trust audit` against the cluster: every annotated
// ServiceAccount with its verdict (IAM through the local endpoint, the issuer discovered),
// exit 1 because some are not trusted.
func TestAudit(t *testing.T) {
	ctx := context.Background()
	ns := namespace(ctx, t, "warn", "audit")
	trusted := "arn:aws:iam::123456789012:role/AuditTrusted"
	suite.iam.PutRole(trusted, minimal(trusted, ns, "good"))
	for name, role := range map[string]string{"good": trusted, "bad": trustedRole, "ghost": "arn:aws:iam::123456789012:role/AuditGhost"} {
		if _, err := suite.cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(ns, name, role), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(suite.binary, "trust", "audit", "--kubeconfig", suite.cp.KubeconfigPath(), "-o", "json")
	cmd.Env = append(os.Environ(), suite.awsEnv...)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("trust audit: %v (want exit 1: some ServiceAccounts are not trusted)\n%s", err, out)
	}
	var rows []struct {
		Namespace, ServiceAccount, RoleARN, Result string
		Reasons                                    []string
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	got := map[string]string{}
	for _, r := range rows {
		if r.Namespace == ns {
			got[r.ServiceAccount] = r.Result
		}
	}
	want := map[string]string{"good": "trusted", "bad": "not_trusted", "ghost": "not_trusted"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts in %s = %v, want %v\n%s", ns, got, want, out)
	}
}
