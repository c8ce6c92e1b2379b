// Package certsmanaged_test runs certs.Manager, the self-managed certificate mode, against a real
// etcd and kube-apiserver. Every test has its own namespace, Secret and webhook configurations,
// and, unless it says otherwise, a client with exactly the rights the Helm chart grants: get and
// update on the Secret by name, get and patch on the two webhook configurations by name.
package certsmanaged_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/certs"
	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
)

const (
	pollTimeout = time.Minute // two busy cores; RBAC and webhook informers lag a little
	// checkInterval is short so that tests wait for checks, not for time.
	checkInterval = 100 * time.Millisecond
	// checkedMessage is the Manager's V(1) log line after every successful check.
	checkedMessage = "serving certificate checked"
)

// cp is the package's control plane, started once by TestMain.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	os.Exit(harness.Main(harness.Options{Name: "certsmanaged", NoBinary: true}, func(s *harness.Suite) int {
		cp = s.CP
		return m.Run()
	}))
}

// runs numbers the environments of this process, for -count.
var runs atomic.Int32

// env is one test's namespace, Secret, webhook configurations and clients.
type env struct {
	name   string // of the namespace, the Service, the webhook configurations and the user
	secret string
	admin  kubernetes.Interface
	user   kubernetes.Interface // the chart's rights only
}

type setupOptions struct {
	noSecret     bool // the chart pre-creates the Secret empty; this leaves it out
	noValidating bool // leave the ValidatingWebhookConfiguration out
}

// setup creates the namespace (name plus a number), the empty Secret, both webhook configurations (webhooks that
// match nothing: a resource that does not exist, failurePolicy Ignore) and the chart's RBAC for
// a user named like the test.
func setup(t *testing.T, name string, so setupOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	defer cancel()
	// Namespaces are never deleted (no namespace controller runs): a name per run.
	name = fmt.Sprintf("%s-%d", name, runs.Add(1))
	e := &env{name: name, secret: name + "-tls", admin: kubernetes.NewForConfigOrDie(cp.Config())}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	_, err := e.admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	must("namespace", err)
	if !so.noSecret {
		_, err = e.admin.CoreV1().Secrets(name).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: e.secret}, Type: corev1.SecretTypeOpaque}, metav1.CreateOptions{})
		must("Secret", err)
	}
	_, err = e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, e.mutatingConfiguration(), metav1.CreateOptions{})
	must("MutatingWebhookConfiguration", err)
	t.Cleanup(func() {
		_ = e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = e.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = e.admin.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = e.admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = e.admin.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if !so.noValidating {
		e.createValidating(t)
	}

	// The chart's RBAC (deploy/charts/irsa-webhook/templates/rbac.yaml, self-managed mode).
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	_, err = e.admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{admissionregistrationv1.GroupName},
			Resources:     []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"},
			ResourceNames: []string{name},
			Verbs:         []string{"get", "patch", "update"},
		}},
	}, metav1.CreateOptions{})
	must("ClusterRole", err)
	_, err = e.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   subjects,
	}, metav1.CreateOptions{})
	must("ClusterRoleBinding", err)
	_, err = e.admin.RbacV1().Roles(name).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "certs"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: []string{e.secret},
			Verbs:         []string{"get", "update"},
		}},
	}, metav1.CreateOptions{})
	must("Role", err)
	_, err = e.admin.RbacV1().RoleBindings(name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "certs"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "certs"},
		Subjects:   subjects,
	}, metav1.CreateOptions{})
	must("RoleBinding", err)
	cfg, err := cp.UserConfig(name, nil)
	must("user client", err)
	e.user = kubernetes.NewForConfigOrDie(cfg)
	return e
}

func (e *env) dnsNames() []string { return certs.ServiceDNSNames(e.name, e.name) }

func (e *env) clientConfig(path string) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{Namespace: e.name, Name: e.name, Path: &path},
	}
}

// nothingRule matches a resource that does not exist: these webhooks are never called.
var nothingRule = []admissionregistrationv1.RuleWithOperations{{
	Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
	Rule:       admissionregistrationv1.Rule{APIGroups: []string{"irsa.test"}, APIVersions: []string{"v1"}, Resources: []string{"nothings"}},
}}

func (e *env) mutatingConfiguration() *admissionregistrationv1.MutatingWebhookConfiguration {
	ignore, none := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone
	var hooks []admissionregistrationv1.MutatingWebhook
	for _, n := range []string{"one", "two"} {
		hooks = append(hooks, admissionregistrationv1.MutatingWebhook{
			Name:                    n + ".irsa.test",
			ClientConfig:            e.clientConfig("/mutate-" + n),
			Rules:                   nothingRule,
			FailurePolicy:           &ignore,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: e.name}, Webhooks: hooks}
}

func (e *env) createValidating(t *testing.T) {
	t.Helper()
	ignore, none := admissionregistrationv1.Ignore, admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: e.name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate.irsa.test",
			ClientConfig:            e.clientConfig("/validate"),
			Rules:                   nothingRule,
			FailurePolicy:           &ignore,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := e.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create ValidatingWebhookConfiguration: %v", err)
	}
}

// options are the Manager's options as the chart's wiring sets them, with a short interval.
func (e *env) options(client kubernetes.Interface, log logr.Logger) certs.Options {
	return certs.Options{
		Client:                         client,
		Namespace:                      e.name,
		SecretName:                     e.secret,
		DNSNames:                       e.dnsNames(),
		MutatingWebhookConfiguration:   e.name,
		ValidatingWebhookConfiguration: e.name,
		CheckInterval:                  checkInterval,
		Log:                            log,
	}
}

func (e *env) getSecret(t *testing.T) *corev1.Secret {
	t.Helper()
	s, err := e.admin.CoreV1().Secrets(e.name).Get(context.Background(), e.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Secret: %v", err)
	}
	return s
}

// bundles returns the caBundle of every webhook of both configurations.
func (e *env) bundles(t *testing.T) [][]byte {
	t.Helper()
	ctx := context.Background()
	var out [][]byte
	mwc, err := e.admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get MutatingWebhookConfiguration: %v", err)
	}
	for _, w := range mwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	vwc, err := e.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get ValidatingWebhookConfiguration: %v", err)
	}
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

// bundlesEqual reports an error unless every caBundle equals want.
func (e *env) bundlesEqual(t *testing.T, want []byte) error {
	t.Helper()
	for i, b := range e.bundles(t) {
		if !bytes.Equal(b, want) {
			return fmt.Errorf("webhook %d: caBundle holds %d certificates, not the expected %d (or others)", i, len(certsIn(t, b)), len(certsIn(t, want)))
		}
	}
	return nil
}

// logs counts the Manager's checks and passes its other lines to the test log.
type logs struct {
	t      *testing.T
	mu     sync.Mutex
	checks int
}

func newLogs(t *testing.T) *logs { return &logs{t: t} }

func (l *logs) logger(name string) logr.Logger {
	return funcr.New(func(prefix, args string) {
		if strings.Contains(args, `"`+checkedMessage+`"`) {
			l.mu.Lock()
			l.checks++
			l.mu.Unlock()
			return
		}
		l.t.Log(prefix, args)
	}, funcr.Options{Verbosity: 1}).WithName(name)
}

func (l *logs) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checks
}

// run starts m until the test ends.
func run(t *testing.T, m *certs.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
}

func newManager(t *testing.T, o certs.Options) *certs.Manager {
	t.Helper()
	m, err := certs.NewManager(o)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// eventually polls f until it returns nil.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	err := harness.Poll(context.Background(), pollTimeout, func() (bool, string) {
		err := f()
		return err == nil, fmt.Sprint(err)
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// certsIn parses every certificate of a PEM bundle.
func certsIn(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	out, err := harness.Certificates(data)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// verifyServing checks that certPEM verifies against the roots in bundle for every name.
func verifyServing(t *testing.T, certPEM, bundle []byte, names []string, now time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatalf("caBundle holds no certificate")
	}
	leaves := certsIn(t, certPEM)
	if len(leaves) != 1 {
		t.Fatalf("serving certificate file holds %d certificates, want 1", len(leaves))
	}
	for _, n := range names {
		if _, err := leaves[0].Verify(x509.VerifyOptions{DNSName: n, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("serving certificate does not verify for %q against the caBundle: %v", n, err)
		}
	}
}

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
