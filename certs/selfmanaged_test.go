package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const (
	testNS      = "irsa-system"
	testSecret  = "irsa-webhook-tls"
	testMWC     = "irsa-webhook"
	testVWC     = "irsa-webhook"
	testService = "irsa-webhook"
)

// Short lifetimes keep the arithmetic of the tests readable.
const (
	testValidity      = 48 * time.Hour
	testRenewBefore   = 12 * time.Hour
	testCAValidity    = 30 * 24 * time.Hour
	testCARenewBefore = 48 * time.Hour
)

var testDNSNames = ServiceDNSNames(testService, testNS)

// clock is an injectable, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func testOptions(cs *fake.Clientset, clk *clock) Options {
	return Options{
		Client:                         cs,
		Namespace:                      testNS,
		SecretName:                     testSecret,
		DNSNames:                       testDNSNames,
		MutatingWebhookConfiguration:   testMWC,
		ValidatingWebhookConfiguration: testVWC,
		Validity:                       testValidity,
		RenewBefore:                    testRenewBefore,
		CAValidity:                     testCAValidity,
		CARenewBefore:                  testCARenewBefore,
		Now:                            clk.Now,
		Log:                            logr.Discard(),
	}
}

func mustManager(t *testing.T, o Options) *Manager {
	t.Helper()
	m, err := NewManager(o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

func webhookConfigs(bundle []byte, names ...string) []runtime.Object {
	var mw []admissionregistrationv1.MutatingWebhook
	var vw []admissionregistrationv1.ValidatingWebhook
	for _, n := range names {
		mw = append(mw, admissionregistrationv1.MutatingWebhook{Name: n, ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: bundle}})
		vw = append(vw, admissionregistrationv1.ValidatingWebhook{Name: n, ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: bundle}})
	}
	return []runtime.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: testMWC}, Webhooks: mw},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: testVWC}, Webhooks: vw},
	}
}

func emptySecret() *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSecret}, Type: corev1.SecretTypeOpaque}
}

func getSecret(t *testing.T, cs *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := cs.CoreV1().Secrets(testNS).Get(context.Background(), testSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Secret: %v", err)
	}
	return s
}

// bundles returns the caBundle of every webhook of both configurations.
func bundles(t *testing.T, cs *fake.Clientset) [][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][]byte
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, testMWC, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get MutatingWebhookConfiguration: %v", err)
	}
	for _, w := range mwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, testVWC, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ValidatingWebhookConfiguration: %v", err)
	}
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// countActions counts the client's actions with the given verb on the given resource.
func countActions(cs *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

// pemCerts parses every certificate of a PEM bundle.
func pemCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("parse bundle: %v", err)
		}
		out = append(out, c)
	}
}

// verifyServing checks that certPEM verifies for every name against the roots in bundle.
func verifyServing(t *testing.T, certPEM, bundle []byte, names []string, now time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatalf("caBundle holds no certificate")
	}
	leaf := mustParse(t, certPEM)
	for _, n := range names {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("serving certificate does not verify for %q against the caBundle: %v", n, err)
		}
	}
}

func TestNewManagerValidate(t *testing.T) {
	cs := fake.NewClientset()
	valid := func() Options {
		return Options{Client: cs, Namespace: testNS, SecretName: testSecret, DNSNames: testDNSNames}
	}
	tests := []struct {
		name    string
		modify  func(*Options)
		wantErr []string
	}{
		{name: "defaults", modify: func(*Options) {}},
		{name: "IP addresses only", modify: func(o *Options) { o.DNSNames = nil; o.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)} }},
		{name: "files", modify: func(o *Options) { o.CertFile, o.KeyFile = "/tls/tls.crt", "/tls/tls.key" }},
		{
			name:    "everything missing",
			modify:  func(o *Options) { *o = Options{} },
			wantErr: []string{"no Kubernetes client", "of the Secret must both be set", "no DNS names"},
		},
		{name: "empty DNS name", modify: func(o *Options) { o.DNSNames = []string{"a", ""} }, wantErr: []string{"empty name"}},
		{name: "cert file without key file", modify: func(o *Options) { o.CertFile = "/tls/tls.crt" }, wantErr: []string{"must both be set"}},
		{name: "same cert and key file", modify: func(o *Options) { o.CertFile, o.KeyFile = "/tls/x", "/tls/./x" }, wantErr: []string{"differ"}},
		{name: "renew-before not shorter than validity", modify: func(o *Options) { o.Validity, o.RenewBefore = time.Hour, time.Hour }, wantErr: []string{"renew-before 1h0m0s must be positive and shorter than the validity"}},
		{name: "negative renew-before", modify: func(o *Options) { o.RenewBefore = -time.Hour }, wantErr: []string{"renew-before -1h0m0s"}},
		{
			name:    "default CA renew-before reaches the CA validity",
			modify:  func(o *Options) { o.Validity, o.CAValidity = 2*time.Hour, 2*time.Hour; o.RenewBefore = time.Hour },
			wantErr: []string{"CA renew-before 2h0m0s must be positive and shorter than the CA validity 2h0m0s"},
		},
		{
			name:    "CA renewed later than the certificate",
			modify:  func(o *Options) { o.CARenewBefore = time.Hour },
			wantErr: []string{"must not be shorter than the certificate's renew-before"},
		},
		{name: "negative interval", modify: func(o *Options) { o.CheckInterval = -time.Second }, wantErr: []string{"check interval"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid()
			tt.modify(&o)
			m, err := NewManager(o)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("NewManager: %v", err)
				}
				if m.opts.Validity != DefaultValidity || m.opts.CheckInterval != DefaultCheckInterval || m.opts.CARenewBefore != DefaultValidity {
					t.Errorf("defaults not applied: %+v", m.opts)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewManager succeeded, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewManager error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestServiceDNSNames(t *testing.T) {
	got := ServiceDNSNames("svc", "ns")
	if want := []string{"svc", "svc.ns", "svc.ns.svc"}; !slices.Equal(got, want) {
		t.Errorf("ServiceDNSNames = %q, want %q", got, want)
	}
}

func TestCheckCreatesSecretAndKeepsIt(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(webhookConfigs(nil, "a.irsa.test", "b.irsa.test")...)
	dir := t.TempDir()
	o := testOptions(cs, clk)
	o.CertFile, o.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	m := mustManager(t, o)
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "first check has not completed") {
		t.Errorf("Ready before the first check = %v, want an error", err)
	}
	if _, err := m.GetCertificate(nil); err == nil {
		t.Errorf("GetCertificate before the first check succeeded")
	}
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("first check: %v", err)
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready after the first check: %v", err)
	}
	s := getSecret(t, cs)
	for _, k := range []string{SecretKeyCACert, SecretKeyCAKey, SecretKeyCert, SecretKeyKey} {
		if len(s.Data[k]) == 0 {
			t.Errorf("Secret lacks %s", k)
		}
	}
	if _, ok := s.Data[SecretKeyPreviousCAs]; ok {
		t.Errorf("Secret has %s without a CA rotation", SecretKeyPreviousCAs)
	}
	for i, b := range bundles(t, cs) {
		if !bytes.Equal(b, s.Data[SecretKeyCACert]) {
			t.Errorf("webhook %d: caBundle is not the CA", i)
		}
	}
	verifyServing(t, s.Data[SecretKeyCert], s.Data[SecretKeyCACert], testDNSNames, t0)
	for path, key := range map[string]string{o.CertFile: SecretKeyCert, o.KeyFile: SecretKeyKey} {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(b, s.Data[key]) {
			t.Errorf("%s does not hold the Secret's %s (read error %v)", path, key, err)
		}
	}
	if fi, err := os.Stat(o.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v (error %v), want 0600", fi.Mode().Perm(), err)
	}
	served, err := m.GetCertificate(nil)
	if err != nil || !bytes.Equal(served.Leaf.Raw, mustParse(t, s.Data[SecretKeyCert]).Raw) {
		t.Errorf("GetCertificate = error %v or another certificate than the Secret's", err)
	}

	certInfo, _ := os.Stat(o.CertFile)
	cs.ClearActions()
	clk.Set(t0.Add(time.Hour))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("second check: %v", err)
	}
	for _, verb := range []string{"create", "update", "patch"} {
		for _, res := range []string{"secrets", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
			if n := countActions(cs, verb, res); n != 0 {
				t.Errorf("second check: %d %s of %s, want none", n, verb, res)
			}
		}
	}
	if again, _ := os.Stat(o.CertFile); !os.SameFile(certInfo, again) {
		t.Errorf("second check rewrote %s", o.CertFile)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("certificate directory holds %d entries, want 2 (no temporary files)", len(entries))
	}
}

// TestCheckAdoptsConcurrentWrite: another replica updates the Secret between our read and our
// update; we must use its CA and certificate instead of overwriting them.
func TestCheckAdoptsConcurrentWrite(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(append(webhookConfigs(nil, "a.irsa.test"), emptySecret())...)
	other := mustManager(t, testOptions(fake.NewClientset(), clk))
	theirs, _, err := other.renewal.plan(material{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	var updates int
	cs.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		if updates > 1 {
			return false, nil, nil
		}
		s := emptySecret()
		s.Data = theirs.into(nil)
		if err := cs.Tracker().Update(gvr, s, testNS); err != nil {
			t.Errorf("simulate the other replica: %v", err)
		}
		return true, nil, apierrors.NewConflict(gvr.GroupResource(), testSecret, errors.New("the object has been modified"))
	})
	m := mustManager(t, testOptions(cs, clk))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if updates != 1 {
		t.Errorf("Secret updated %d times, want 1 (the conflicting one)", updates)
	}
	s := getSecret(t, cs)
	if !bytes.Equal(s.Data[SecretKeyCACert], theirs.caCert) || !bytes.Equal(s.Data[SecretKeyCert], theirs.cert) {
		t.Errorf("Secret does not hold the other replica's CA and certificate")
	}
	served, err := m.GetCertificate(nil)
	if err != nil || !bytes.Equal(served.Leaf.Raw, mustParse(t, theirs.cert).Raw) {
		t.Errorf("served certificate is not the other replica's (error %v)", err)
	}
	if b := bundles(t, cs); !bytes.Equal(b[0], theirs.caCert) {
		t.Errorf("caBundle is not the other replica's CA")
	}
}

func TestCheckCreateRace(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(webhookConfigs(nil, "a.irsa.test")...)
	other := mustManager(t, testOptions(fake.NewClientset(), clk))
	theirs, _, _ := other.renewal.plan(material{}, t0)
	cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		s := emptySecret()
		s.Data = theirs.into(nil)
		if err := cs.Tracker().Add(s); err != nil {
			t.Errorf("simulate the other replica: %v", err)
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, testSecret)
	})
	m := mustManager(t, testOptions(cs, clk))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if s := getSecret(t, cs); !bytes.Equal(s.Data[SecretKeyCert], theirs.cert) {
		t.Errorf("Secret does not hold the other replica's certificate")
	}
}

func TestCheckErrors(t *testing.T) {
	tests := []struct {
		name    string
		objects []runtime.Object
		reactor func(cs *fake.Clientset)
		wantErr string
	}{
		{
			name:    "Secret absent and not creatable",
			objects: webhookConfigs(nil, "a.irsa.test"),
			reactor: func(cs *fake.Clientset) {
				cs.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, testSecret, errors.New("RBAC"))
				})
			},
			wantErr: `create Secret irsa-system/irsa-webhook-tls, which does not exist`,
		},
		{
			name:    "Secret update forbidden",
			objects: append(webhookConfigs(nil, "a.irsa.test"), emptySecret()),
			reactor: func(cs *fake.Clientset) {
				cs.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, testSecret, errors.New("RBAC"))
				})
			},
			wantErr: `update Secret irsa-system/irsa-webhook-tls (caMissing)`,
		},
		{
			name:    "endless conflicts",
			objects: append(webhookConfigs(nil, "a.irsa.test"), emptySecret()),
			reactor: func(cs *fake.Clientset) {
				cs.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, testSecret, errors.New("modified"))
				})
			},
			wantErr: `update Secret irsa-system/irsa-webhook-tls`,
		},
		{
			name:    "webhook configuration absent",
			objects: []runtime.Object{webhookConfigs(nil, "a.irsa.test")[0]},
			wantErr: `get ValidatingWebhookConfiguration "irsa-webhook" to write its caBundle`,
		},
		{
			name:    "caBundle patch keeps failing",
			objects: webhookConfigs(nil, "a.irsa.test"),
			reactor: func(cs *fake.Clientset) {
				cs.PrependReactor("patch", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "MutatingWebhookConfiguration"}, testMWC, nil)
				})
			},
			wantErr: `patch caBundle of MutatingWebhookConfiguration "irsa-webhook"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(tt.objects...)
			if tt.reactor != nil {
				tt.reactor(cs)
			}
			m := mustManager(t, testOptions(cs, &clock{t: t0}))
			err := m.check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("check error = %v, want one containing %q", err, tt.wantErr)
			}
			if rerr := m.Ready(); rerr == nil || !strings.Contains(rerr.Error(), tt.wantErr) {
				t.Errorf("Ready = %v, want the check's error", rerr)
			}
			if _, gerr := m.GetCertificate(nil); gerr == nil {
				t.Errorf("GetCertificate succeeded after a failed first check")
			}
		})
	}
}

// TestInjectCABundleRetries: a configuration changed between our read and our patch (the
// patch's test operation fails with Invalid) is read again and patched.
func TestInjectCABundleRetries(t *testing.T) {
	cs := fake.NewClientset(append(webhookConfigs(nil, "a.irsa.test", "b.irsa.test"), emptySecret())...)
	failures := 0
	cs.PrependReactor("patch", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failures++; failures == 1 {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "ValidatingWebhookConfiguration"}, testVWC, nil)
		}
		return false, nil, nil
	})
	m := mustManager(t, testOptions(cs, &clock{t: t0}))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	ca := getSecret(t, cs).Data[SecretKeyCACert]
	for i, b := range bundles(t, cs) {
		if !bytes.Equal(b, ca) {
			t.Errorf("webhook %d: caBundle is not the CA", i)
		}
	}
	if n := countActions(cs, "patch", "validatingwebhookconfigurations"); n != 2 {
		t.Errorf("%d patches of the ValidatingWebhookConfiguration, want 2", n)
	}
}

// TestInjectCABundleOnlyWhatDiffers: one webhook already has the bundle; the patch touches
// only the other one, and keeps fields the patch does not name.
func TestInjectCABundleOnlyWhatDiffers(t *testing.T) {
	clk := &clock{t: t0}
	m0 := mustManager(t, testOptions(fake.NewClientset(), clk))
	mat, _, _ := m0.renewal.plan(material{}, t0)
	s := emptySecret()
	s.Data = mat.into(nil)
	objs := webhookConfigs(nil, "a.irsa.test", "b.irsa.test")
	mwc := objs[0].(*admissionregistrationv1.MutatingWebhookConfiguration)
	mwc.Webhooks[0].ClientConfig.CABundle = mat.caCert
	url := "https://127.0.0.1:9443/mutate"
	mwc.Webhooks[1].ClientConfig.URL = &url
	cs := fake.NewClientset(append(objs, s)...)
	m := mustManager(t, testOptions(cs, clk))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	var patches []string
	for _, a := range cs.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "mutatingwebhookconfigurations" {
			patches = append(patches, string(p.GetPatch()))
		}
	}
	if len(patches) != 1 || strings.Contains(patches[0], "/webhooks/0/") || !strings.Contains(patches[0], `{"op":"test","path":"/webhooks/1/name","value":"b.irsa.test"}`) {
		t.Errorf("patches = %q, want one for webhook 1 only", patches)
	}
	got, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), testMWC, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := got.Webhooks[1].ClientConfig.URL; u == nil || *u != url {
		t.Errorf("patch lost webhook 1's URL: %v", u)
	}
	if n := countActions(cs, "update", "secrets"); n != 0 {
		t.Errorf("valid Secret updated %d times", n)
	}
}

// TestRotation walks a clock through a certificate renewal, a CA renewal and the expiry of the
// replaced CA.
func TestRotation(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(append(webhookConfigs(nil, "a.irsa.test"), emptySecret())...)
	dir := t.TempDir()
	o := testOptions(cs, clk)
	o.CertFile, o.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	m := mustManager(t, o)
	check := func(at time.Time) *corev1.Secret {
		t.Helper()
		clk.Set(at)
		if err := m.check(context.Background()); err != nil {
			t.Fatalf("check at %v: %v", at, err)
		}
		s := getSecret(t, cs)
		for i, b := range bundles(t, cs) {
			if !bytes.Equal(b, caBundle(materialFrom(s), at)) {
				t.Errorf("at %v: webhook %d caBundle differs from the Secret's", at, i)
			}
			verifyServing(t, s.Data[SecretKeyCert], b, testDNSNames, at)
		}
		if f, _ := os.ReadFile(o.CertFile); !bytes.Equal(f, s.Data[SecretKeyCert]) {
			t.Errorf("at %v: %s is not the Secret's certificate", at, o.CertFile)
		}
		if err := m.Ready(); err != nil {
			t.Errorf("at %v: Ready: %v", at, err)
		}
		return s
	}

	first := check(t0)
	caA := first.Data[SecretKeyCACert]

	// The serving certificate is due: a new one from the same CA.
	renewed := check(t0.Add(testValidity - testRenewBefore + time.Minute))
	if bytes.Equal(renewed.Data[SecretKeyCert], first.Data[SecretKeyCert]) {
		t.Errorf("serving certificate not renewed")
	}
	if !bytes.Equal(renewed.Data[SecretKeyCACert], caA) {
		t.Errorf("CA replaced with the serving certificate")
	}
	if got := len(pemCerts(t, bundles(t, cs)[0])); got != 1 {
		t.Errorf("caBundle holds %d CAs after a certificate renewal, want 1", got)
	}

	// The CA is due: a new CA, the old one stays trusted.
	caDue := t0.Add(testCAValidity - testCARenewBefore + time.Minute)
	beforeCADue := check(caDue.Add(-time.Hour))
	rotated := check(caDue)
	caB := rotated.Data[SecretKeyCACert]
	if bytes.Equal(caB, caA) {
		t.Fatalf("CA not renewed")
	}
	if want := slices.Concat(caB, caA); !bytes.Equal(bundles(t, cs)[0], want) {
		t.Errorf("caBundle after the CA renewal is not the new CA followed by the old one")
	}
	// A replica still serving the certificate of the old CA is trusted.
	verifyServing(t, beforeCADue.Data[SecretKeyCert], bundles(t, cs)[0], testDNSNames, caDue)

	// The old CA expires: it leaves the caBundle, the Secret is not rewritten for that. (The
	// check before renews the certificate, due at the same time as the old CA expires.)
	check(t0.Add(testCAValidity - time.Hour))
	cs.ClearActions()
	check(t0.Add(testCAValidity + time.Minute))
	if !bytes.Equal(bundles(t, cs)[0], caB) {
		t.Errorf("caBundle still holds the expired CA")
	}
	if n := countActions(cs, "update", "secrets"); n != 0 {
		t.Errorf("Secret rewritten %d times when the old CA expired", n)
	}
}

func TestReadyExpired(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(webhookConfigs(nil, "a.irsa.test")...)
	m := mustManager(t, testOptions(cs, clk))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	// Renewal fails from now on; the certificate in use runs out.
	cs.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("apiserver down")
	})
	clk.Set(t0.Add(testValidity - time.Minute))
	if err := m.check(context.Background()); err == nil {
		t.Fatalf("check with the API down succeeded")
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready with a valid certificate and a failed renewal: %v (want ready: the API being down must not unready every replica)", err)
	}
	clk.Set(t0.Add(testValidity))
	if err := m.Ready(); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "apiserver down") {
		t.Errorf("Ready with an expired certificate = %v, want an error naming the expiry and the failure", err)
	}
}

func TestStart(t *testing.T) {
	cs := fake.NewClientset(webhookConfigs(nil, "a.irsa.test")[0])
	o := testOptions(cs, &clock{t: t0})
	o.CheckInterval = 10 * time.Millisecond
	m := mustManager(t, o)
	if m.NeedLeaderElection() {
		t.Errorf("NeedLeaderElection = true, want every replica to run it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()

	waitFor(t, func() error {
		if err := m.Ready(); err == nil || !strings.Contains(err.Error(), `ValidatingWebhookConfiguration "irsa-webhook"`) {
			return errors.New("not reporting the missing configuration yet")
		}
		return nil
	})
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, webhookConfigs(nil, "a.irsa.test")[1].(*admissionregistrationv1.ValidatingWebhookConfiguration), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The first retry comes after min(1s, CheckInterval).
	waitFor(t, m.Ready)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start = %v, want nil on cancellation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return after cancellation")
	}
}

// waitFor polls f until it returns nil, for up to 10 seconds.
func waitFor(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 10s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMissingConfigurationDoesNotStopRenewal: with one configuration gone, a renewed certificate
// of the same CA is still served; one of a new CA is not, as the API server would not trust it.
func TestMissingConfigurationDoesNotStopRenewal(t *testing.T) {
	clk := &clock{t: t0}
	cs := fake.NewClientset(webhookConfigs(nil, "a.irsa.test")...)
	m := mustManager(t, testOptions(cs, clk))
	if err := m.check(context.Background()); err != nil {
		t.Fatalf("first check: %v", err)
	}
	if err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), testVWC, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	served := func() *x509.Certificate {
		t.Helper()
		c, err := m.GetCertificate(nil)
		if err != nil {
			t.Fatalf("GetCertificate: %v", err)
		}
		return c.Leaf
	}
	const wantErr = `get ValidatingWebhookConfiguration "irsa-webhook"`

	clk.Set(t0.Add(testValidity - testRenewBefore))
	if err := m.check(context.Background()); err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("check = %v, want an error containing %q", err, wantErr)
	}
	if s := getSecret(t, cs); !bytes.Equal(served().Raw, mustParse(t, s.Data[SecretKeyCert]).Raw) {
		t.Errorf("renewed certificate of the same CA not served")
	}
	if err := m.Ready(); err != nil {
		t.Errorf("Ready after a failed later check: %v", err)
	}

	clk.Set(t0.Add(testCAValidity - testCARenewBefore))
	before := served()
	if err := m.check(context.Background()); err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("check = %v, want an error containing %q", err, wantErr)
	}
	if !bytes.Equal(served().Raw, before.Raw) {
		t.Errorf("certificate of a new CA served while a caBundle lacks that CA")
	}
}
