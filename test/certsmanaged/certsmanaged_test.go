package certsmanaged_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
)

// TestSelfManaged is the chart's path: an empty Secret, both configurations, the chart's rights.
func TestSelfManaged(t *testing.T) {
	e := setup(t, "certs-main", setupOptions{})
	dir := t.TempDir()
	o := e.options(e.user, newLogs(t).logger("certs"))
	o.CertFile, o.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	m := newManager(t, o)
	run(t, m)
	eventually(t, "Manager ready", m.Ready)

	s := e.getSecret(t)
	for _, k := range []string{certs.SecretKeyCACert, certs.SecretKeyCAKey, certs.SecretKeyCert, certs.SecretKeyKey} {
		if len(s.Data[k]) == 0 {
			t.Errorf("Secret lacks %s", k)
		}
	}
	ca := s.Data[certs.SecretKeyCACert]
	if got := certsIn(t, ca); len(got) != 1 || !got[0].IsCA {
		t.Fatalf("%s is not one CA certificate", certs.SecretKeyCACert)
	}
	bundles := e.bundles(t)
	if len(bundles) != 3 {
		t.Fatalf("%d webhooks, want 3", len(bundles))
	}
	if err := e.bundlesEqual(t, ca); err != nil {
		t.Error(err)
	}
	for file, key := range map[string]string{o.CertFile: certs.SecretKeyCert, o.KeyFile: certs.SecretKeyKey} {
		b, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(b, s.Data[key]) {
			t.Errorf("%s does not hold the Secret's %s (read error %v)", file, key, err)
		}
	}
	served, err := os.ReadFile(o.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	verifyServing(t, served, bundles[0], e.dnsNames(), time.Now())
	if _, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile); err != nil {
		t.Errorf("written files are not a key pair: %v", err)
	}
	pair, err := m.GetCertificate(nil)
	if err != nil || !bytes.Equal(pair.Leaf.Raw, certsIn(t, served)[0].Raw) {
		t.Errorf("GetCertificate = error %v or another certificate than the file's", err)
	}
}

// TestSecretAbsent: the Manager creates an absent Secret when it may; with the chart's rights
// (no create) it says what is missing and stays not ready.
func TestSecretAbsent(t *testing.T) {
	tests := []struct {
		name      string
		admin     bool
		wantReady bool
	}{
		{name: "certs-absent-admin", admin: true, wantReady: true},
		{name: "certs-absent-chart", admin: false, wantReady: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, tt.name, setupOptions{noSecret: true})
			client := e.user
			if tt.admin {
				client = e.admin
			}
			m := newManager(t, e.options(client, newLogs(t).logger("certs")))
			run(t, m)
			if tt.wantReady {
				eventually(t, "Manager ready", m.Ready)
				if err := e.bundlesEqual(t, e.getSecret(t).Data[certs.SecretKeyCACert]); err != nil {
					t.Error(err)
				}
				return
			}
			want := fmt.Sprintf("create Secret %s/%s, which does not exist", e.name, e.secret)
			eventually(t, "Ready names the missing Secret", func() error {
				err := m.Ready()
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "forbidden") {
					return fmt.Errorf("Ready = %w, want an error containing %q and forbidden", err, want)
				}
				return nil
			})
		})
	}
}

// TestReplicasConverge: two replicas start at once on one empty Secret; they agree on one CA
// and certificate, the Secret is written once, and further checks change nothing.
func TestReplicasConverge(t *testing.T) {
	e := setup(t, "certs-replicas", setupOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	defer cancel()
	w, err := e.admin.CoreV1().Secrets(e.name).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", e.secret).String(),
		ResourceVersion: e.getSecret(t).ResourceVersion,
	})
	if err != nil {
		t.Fatalf("watch Secret: %v", err)
	}
	defer w.Stop()
	var modified atomic.Int32
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				modified.Add(1)
			}
		}
	}()

	var ms []*certs.Manager
	var ls []*logs
	for i := range 2 {
		l := newLogs(t)
		dir := t.TempDir()
		o := e.options(e.user, l.logger(fmt.Sprintf("replica%d", i)))
		o.CertFile, o.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		ms, ls = append(ms, newManager(t, o)), append(ls, l)
	}
	for _, m := range ms {
		run(t, m)
	}
	for i, m := range ms {
		eventually(t, fmt.Sprintf("replica %d ready", i), m.Ready)
	}
	mwc, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// Let each replica check ten more times.
	var after []int
	for _, l := range ls {
		after = append(after, l.count())
	}
	for i, l := range ls {
		eventually(t, fmt.Sprintf("replica %d checks again", i), func() error {
			if n := l.count() - after[i]; n < 10 {
				return fmt.Errorf("%d checks since ready", n)
			}
			return nil
		})
	}

	s := e.getSecret(t)
	for i, m := range ms {
		pair, err := m.GetCertificate(nil)
		if err != nil {
			t.Fatalf("replica %d: GetCertificate: %v", i, err)
		}
		if !bytes.Equal(pair.Leaf.Raw, certsIn(t, s.Data[certs.SecretKeyCert])[0].Raw) {
			t.Errorf("replica %d serves another certificate than the Secret's", i)
		}
	}
	if err := e.bundlesEqual(t, s.Data[certs.SecretKeyCACert]); err != nil {
		t.Error(err)
	}
	if n := modified.Load(); n != 1 {
		t.Errorf("Secret modified %d times, want 1", n)
	}
	again, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != mwc.ResourceVersion {
		t.Errorf("MutatingWebhookConfiguration changed after both replicas were ready (resourceVersion %s, then %s)", mwc.ResourceVersion, again.ResourceVersion)
	}
}

// TestRotation moves an injected clock through a certificate renewal, a CA renewal and the
// expiry of the replaced CA.
func TestRotation(t *testing.T) {
	const (
		validity      = 48 * time.Hour
		renewBefore   = 12 * time.Hour
		caValidity    = 30 * 24 * time.Hour
		caRenewBefore = 48 * time.Hour
	)
	e := setup(t, "certs-rotation", setupOptions{})
	start := time.Now()
	clk := &clock{t: start}
	dir := t.TempDir()
	o := e.options(e.user, newLogs(t).logger("certs"))
	o.CertFile, o.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	o.Validity, o.RenewBefore, o.CAValidity, o.CARenewBefore = validity, renewBefore, caValidity, caRenewBefore
	o.Now = clk.Now
	m := newManager(t, o)
	run(t, m)
	eventually(t, "Manager ready", m.Ready)
	first := e.getSecret(t)
	caA := first.Data[certs.SecretKeyCACert]

	// served waits until the Manager serves and has written the Secret's current certificate.
	served := func(what string, changed func(*corev1.Secret) bool) *corev1.Secret {
		t.Helper()
		var s *corev1.Secret
		eventually(t, what, func() error {
			s = e.getSecret(t)
			if !changed(s) {
				return errors.New("Secret not changed yet")
			}
			pair, err := m.GetCertificate(nil)
			if err != nil || !bytes.Equal(pair.Leaf.Raw, certsIn(t, s.Data[certs.SecretKeyCert])[0].Raw) {
				return fmt.Errorf("Manager does not serve the Secret's certificate yet (error %w)", err)
			}
			if f, _ := os.ReadFile(o.CertFile); !bytes.Equal(f, s.Data[certs.SecretKeyCert]) {
				return fmt.Errorf("%s does not hold the Secret's certificate yet", o.CertFile)
			}
			return nil
		})
		return s
	}

	t.Run("certificate renewal keeps the CA", func(t *testing.T) {
		at := start.Add(validity - renewBefore + time.Minute)
		clk.Set(at)
		renewed := served("certificate renewed", func(s *corev1.Secret) bool {
			return !bytes.Equal(s.Data[certs.SecretKeyCert], first.Data[certs.SecretKeyCert])
		})
		if !bytes.Equal(renewed.Data[certs.SecretKeyCACert], caA) {
			t.Errorf("CA replaced along with the certificate")
		}
		if err := e.bundlesEqual(t, caA); err != nil {
			t.Error(err)
		}
		verifyServing(t, renewed.Data[certs.SecretKeyCert], caA, e.dnsNames(), at)
	})

	caDue := start.Add(caValidity - caRenewBefore + time.Minute)
	var caB []byte
	t.Run("CA renewal keeps the old CA in the caBundle", func(t *testing.T) {
		// The last certificate of the old CA, still served by a replica that has not checked yet.
		clk.Set(caDue.Add(-time.Hour))
		lastOfA := served("certificate renewed before the CA", func(s *corev1.Secret) bool {
			return certsIn(t, s.Data[certs.SecretKeyCert])[0].NotAfter.After(caDue)
		})
		clk.Set(caDue)
		rotated := served("CA renewed", func(s *corev1.Secret) bool {
			return !bytes.Equal(s.Data[certs.SecretKeyCACert], caA)
		})
		caB = rotated.Data[certs.SecretKeyCACert]
		want := slices.Concat(caB, caA)
		eventually(t, "caBundles hold the new and the old CA", func() error { return e.bundlesEqual(t, want) })
		if !bytes.Equal(rotated.Data[certs.SecretKeyPreviousCAs], caA) {
			t.Errorf("Secret's %s is not the old CA", certs.SecretKeyPreviousCAs)
		}
		verifyServing(t, rotated.Data[certs.SecretKeyCert], want, e.dnsNames(), caDue)
		verifyServing(t, lastOfA.Data[certs.SecretKeyCert], want, e.dnsNames(), caDue)
		if err := m.Ready(); err != nil {
			t.Errorf("Ready after the CA renewal: %v", err)
		}
	})
	if caB == nil {
		t.FailNow()
	}

	t.Run("expired old CA leaves the caBundle", func(t *testing.T) {
		clk.Set(start.Add(caValidity + time.Minute))
		eventually(t, "caBundles hold the new CA only", func() error { return e.bundlesEqual(t, caB) })
		if err := m.Ready(); err != nil {
			t.Errorf("Ready: %v", err)
		}
	})
}

// TestNotReadyUntilConfigurationExists: a configuration that does not exist yet keeps the
// Manager not ready, named in the error; once created, the next check injects it.
func TestNotReadyUntilConfigurationExists(t *testing.T) {
	e := setup(t, "certs-late-config", setupOptions{noValidating: true})
	m := newManager(t, e.options(e.user, newLogs(t).logger("certs")))
	run(t, m)
	want := fmt.Sprintf("get ValidatingWebhookConfiguration %q to write its caBundle", e.name)
	eventually(t, "Ready names the missing configuration", func() error {
		if err := m.Ready(); err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("Ready = %w, want an error containing %q", err, want)
		}
		return nil
	})
	if _, err := m.GetCertificate(nil); err == nil {
		t.Errorf("GetCertificate serves before the caBundles are written")
	}
	e.createValidating(t)
	eventually(t, "Manager ready", m.Ready)
	if err := e.bundlesEqual(t, e.getSecret(t).Data[certs.SecretKeyCACert]); err != nil {
		t.Error(err)
	}
}

// TestAPIServerCallsWebhook: the API server calls a webhook that serves the Manager's
// certificate, trusting the caBundle the Manager wrote, before and after a CA replacement.
func TestAPIServerCallsWebhook(t *testing.T) {
	e := setup(t, "certs-call", setupOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*pollTimeout)
	defer cancel()
	o := e.options(e.user, newLogs(t).logger("certs"))
	o.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	m := newManager(t, o)

	calls := &controlplane.AllowingWebhook{}
	var lastServed atomic.Pointer[tls.Certificate]
	srv := httptest.NewUnstartedServer(calls)
	// Not StartTLS: it adds httptest's own certificate, which crypto/tls serves instead of
	// GetCertificate's when the client sends no server name (the API server calls an IP).
	srv.Listener = tls.NewListener(srv.Listener, &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := m.GetCertificate(hello)
		if err == nil {
			lastServed.Store(c)
		}
		return c, err
	}})
	srv.Config.SetKeepAlivesEnabled(false) // a handshake per call: the current certificate
	srv.Start()
	defer srv.Close()

	// A webhook that fails closed for ConfigMaps in the test namespace: a create succeeds only
	// once the API server has called it over TLS it trusts.
	label := map[string]string{"irsa-certsmanaged-test": e.name}
	ns, err := e.admin.CoreV1().Namespaces().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels = label
	if _, err := e.admin.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	url := "https://" + srv.Listener.Addr().String() + "/mutate"
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	mwc, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
		Name:         "called.irsa.test",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}},
		NamespaceSelector:       &metav1.LabelSelector{MatchLabels: label},
		FailurePolicy:           &fail,
		SideEffects:             &none,
		AdmissionReviewVersions: []string{"v1"},
	})
	if _, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	run(t, m)
	eventually(t, "Manager ready", m.Ready)

	// callSucceeds creates a ConfigMap (dry run) and wants the webhook called with the
	// certificate from ca.
	callSucceeds := func(what string, ca []byte) {
		t.Helper()
		eventually(t, what, func() error {
			before := calls.Calls()
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}
			if _, err := e.admin.CoreV1().ConfigMaps(e.name).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				return fmt.Errorf("create ConfigMap: %w", err)
			}
			if calls.Calls() == before {
				return errors.New("created without calling the webhook: the API server has not seen the configuration yet")
			}
			if c := lastServed.Load(); c == nil || c.Leaf.CheckSignatureFrom(certsIn(t, ca)[0]) != nil {
				return errors.New("the call was served with a certificate from another CA")
			}
			return nil
		})
	}
	caA := e.getSecret(t).Data[certs.SecretKeyCACert]
	if err := e.bundlesEqual(t, caA); err != nil {
		t.Fatal(err)
	}
	callSucceeds("webhook called with the first CA", caA)

	// Replace the CA by breaking its key (the clock cannot move: the API server's is real).
	s := e.getSecret(t)
	s.Data[certs.SecretKeyCAKey] = []byte("not a key")
	if _, err := e.admin.CoreV1().Secrets(e.name).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var caB []byte
	eventually(t, "CA replaced", func() error {
		caB = e.getSecret(t).Data[certs.SecretKeyCACert]
		if bytes.Equal(caB, caA) {
			return errors.New("same CA")
		}
		pair, err := m.GetCertificate(nil)
		// Both CAs have the same subject: only the signature tells which one issued the leaf.
		if err != nil || pair.Leaf.CheckSignatureFrom(certsIn(t, caB)[0]) != nil {
			return errors.New("not serving a certificate of the new CA yet")
		}
		return nil
	})
	if err := e.bundlesEqual(t, slices.Concat(caB, caA)); err != nil {
		t.Error(err)
	}
	callSucceeds("webhook called with the new CA", caB)
}
