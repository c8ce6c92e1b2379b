package reliability_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// envHelm names a helm binary to use instead of building one (as in test/chart).
const envHelm = "IRSA_HELM"

// The release the RBAC drill installs: the chart's documented default names.
const (
	chartRelease   = "irsa-webhook"
	chartNamespace = "irsa-webhook"
	chartFullname  = "irsa-webhook"
	chartSecret    = chartFullname + "-tls"
	webhookSA      = "system:serviceaccount:" + chartNamespace + ":" + chartFullname
)

// helmBinary returns $IRSA_HELM, else the helm test/tools/build-helm.sh builds into the cache.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(envHelm); p != "" {
		return p
	}
	root, err := webhookproc.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "test", "tools", "build-helm.sh"))
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build helm with test/tools/build-helm.sh (or set $%s): %v", envHelm, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return filepath.Join(lines[len(lines)-1], "helm")
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// renderChart runs `helm template` on the chart with its default values and decodes every
// object it renders.
func renderChart(t *testing.T) []runtime.Object {
	t.Helper()
	root, err := webhookproc.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	home := suite.TestDir(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmBinary(t), "template", chartRelease, filepath.Join(root, "deploy", "charts", "irsa-webhook"), "--namespace", chartNamespace)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	var objs []runtime.Object
	for _, doc := range docSeparator.Split(stdout.String(), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("decode rendered object: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
	return objs
}

// applyRBAC creates the namespace and, of the rendered objects, only the ServiceAccount, the
// RBAC objects and the placeholder Secret. It returns the webhook's Deployment (not applied).
func applyRBAC(t *testing.T, objs []runtime.Object) *appsv1.Deployment {
	t.Helper()
	ctx := t.Context()
	ignoreExists := func(what string, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	_, err := suite.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chartNamespace}}, metav1.CreateOptions{})
	ignoreExists("namespace", err)
	applied := map[string]int{}
	var deploy *appsv1.Deployment
	for _, obj := range objs {
		var err error
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = suite.Admin.CoreV1().ServiceAccounts(chartNamespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = suite.Admin.CoreV1().Secrets(chartNamespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = suite.Admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = suite.Admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = suite.Admin.RbacV1().Roles(chartNamespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = suite.Admin.RbacV1().RoleBindings(chartNamespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			deploy = o
			continue
		default:
			continue
		}
		kind := fmt.Sprintf("%T", obj)
		ignoreExists(kind, err)
		applied[kind]++
	}
	for _, kind := range []string{"*v1.ServiceAccount", "*v1.Secret", "*v1.ClusterRole", "*v1.ClusterRoleBinding", "*v1.Role", "*v1.RoleBinding"} {
		if applied[kind] == 0 {
			t.Fatalf("the chart rendered no %s with default values; applied %v", kind, applied)
		}
	}
	if deploy == nil {
		t.Fatal("the chart rendered no Deployment")
	}
	return deploy
}

// asWebhook is the admin configuration impersonating the chart's ServiceAccount, with the
// groups the API server gives every ServiceAccount.
func asWebhook() *rest.Config {
	cfg := suite.CP.Config()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: webhookSA, Groups: webhookGroups}
	return cfg
}

var webhookGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNamespace, "system:authenticated"}

// TestChartRBAC applies the chart's ServiceAccount, RBAC and placeholder Secret (default
// values, self-managed certificates) to the API server and, impersonating the webhook's
// ServiceAccount, proves what it can and cannot do; then runs the binary with that identity
// and the chart's arguments and shows it becomes ready and mutates pods: the RBAC is
// sufficient, not only restrictive.
func TestChartRBAC(t *testing.T) {
	ctx := t.Context()
	objs := renderChart(t)
	deploy := applyRBAC(t, objs)
	drill := "rbac"
	ns := drillNamespace(t, drill)

	// Objects the webhook must not reach, and its own webhook configurations (which the
	// chart would create; here registered for this drill's namespaces, at the URL where the
	// process below listens, with an empty caBundle the webhook fills in).
	must := func(what string, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s: %v", what, err)
		}
	}
	_, err := suite.Admin.CoreV1().Secrets(chartNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	must("other Secret in the webhook's namespace", err)
	_, err = suite.Admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	must("Secret in another namespace", err)
	port, err := webhookproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "https://localhost:" + fmt.Sprint(port)
	own := webhookproc.PodWebhookConfiguration(chartFullname, base+webhookproc.PodPath, nil, admissionregistrationv1.Fail)
	own.Webhooks[0].NamespaceSelector = drillSelector(drill)
	ownSA := webhookproc.ServiceAccountWebhookConfiguration(chartFullname, base+webhookproc.ServiceAccountPath, nil, admissionregistrationv1.Fail)
	ownSA.Webhooks[0].NamespaceSelector = drillSelector(drill)
	other := webhookproc.PodWebhookConfiguration("irsa-rel-rbac-other", base+"/other", nil, admissionregistrationv1.Ignore)
	other.Webhooks[0].NamespaceSelector = drillSelector("nothing")
	for _, c := range []*admissionregistrationv1.MutatingWebhookConfiguration{own, other} {
		_, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{})
		must("MutatingWebhookConfiguration "+c.Name, err)
	}
	_, err = suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, ownSA, metav1.CreateOptions{})
	must("ValidatingWebhookConfiguration", err)
	t.Cleanup(func() {
		bg := context.Background()
		_ = suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(bg, own.Name, metav1.DeleteOptions{})
		_ = suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(bg, other.Name, metav1.DeleteOptions{})
		_ = suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(bg, ownSA.Name, metav1.DeleteOptions{})
	})

	cs := kubernetes.NewForConfigOrDie(asWebhook())
	now := metav1.Now()
	regarding := corev1.ObjectReference{APIVersion: "v1", Kind: "ServiceAccount", Namespace: ns, Name: "probe"}
	tests := []struct {
		name    string
		allowed bool
		do      func(ctx context.Context) error
	}{
		{"list serviceaccounts in all namespaces", true, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}},
		{"watch serviceaccounts in all namespaces", true, func(ctx context.Context) error {
			timeout := int64(1)
			w, err := cs.CoreV1().ServiceAccounts("").Watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"get a serviceaccount", true, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "probe", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil // allowed; the probe ServiceAccount may not exist yet
			}
			return err
		}},
		{"create events (core/v1)", true, func(ctx context.Context) error {
			_, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-drill-"}, InvolvedObject: regarding,
				Reason: "RBACDrill", Message: "can the webhook record events", Type: corev1.EventTypeNormal,
				Source: corev1.EventSource{Component: "irsa-reliability"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
			}, metav1.CreateOptions{})
			return err
		}},
		{"create events (events.k8s.io/v1)", true, func(ctx context.Context) error {
			_, err := cs.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{GenerateName: "rbac-drill-"}, EventTime: metav1.NewMicroTime(time.Now()),
				ReportingController: "irsa-reliability.test/drill", ReportingInstance: "rbac", Action: "Check", Reason: "RBACDrill",
				Regarding: regarding, Note: "can the webhook record events", Type: corev1.EventTypeNormal,
			}, metav1.CreateOptions{})
			return err
		}},
		{"get its own Secret", true, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(chartNamespace).Get(ctx, chartSecret, metav1.GetOptions{})
			return err
		}},
		{"update its own Secret", true, func(ctx context.Context) error {
			s, err := suite.Admin.CoreV1().Secrets(chartNamespace).Get(ctx, chartSecret, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.CoreV1().Secrets(chartNamespace).Update(ctx, s, metav1.UpdateOptions{})
			return err
		}},
		{"patch its own MutatingWebhookConfiguration", true, func(ctx context.Context) error {
			_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, chartFullname, types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/name","value":"`+chartFullname+`"}]`), metav1.PatchOptions{})
			return err
		}},
		{"patch its own ValidatingWebhookConfiguration", true, func(ctx context.Context) error {
			_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Patch(ctx, chartFullname, types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/name","value":"`+chartFullname+`"}]`), metav1.PatchOptions{})
			return err
		}},
		// The caBundle is written with a JSON patch (certs/selfmanaged.go): update is unused.
		{"update its own MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			c, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, chartFullname, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, c, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"update its own ValidatingWebhookConfiguration", false, func(ctx context.Context) error {
			c, err := suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, chartFullname, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, c, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		// controller-runtime's metrics filter asks the API server about each /metrics caller.
		{"create tokenreviews", true, func(ctx context.Context) error {
			_, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{})
			return err
		}},
		{"create subjectaccessreviews", true, func(ctx context.Context) error {
			_, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: "someone", NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
			}}, metav1.CreateOptions{})
			return err
		}},
		{"get a Secret in another namespace", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(ns).Get(ctx, "elsewhere", metav1.GetOptions{})
			return err
		}},
		{"get another Secret in its own namespace", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(chartNamespace).Get(ctx, "other", metav1.GetOptions{})
			return err
		}},
		{"list Secrets in its own namespace", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(chartNamespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list Secrets in all namespaces", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"watch Secrets in its own namespace", false, func(ctx context.Context) error {
			w, err := cs.CoreV1().Secrets(chartNamespace).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}},
		{"create a Secret", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(chartNamespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-"}}, metav1.CreateOptions{})
			return err
		}},
		{"delete its own Secret", false, func(ctx context.Context) error {
			return cs.CoreV1().Secrets(chartNamespace).Delete(ctx, chartSecret, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}},
		{"update another MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			c, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, other.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("admin get: %w", err)
			}
			_, err = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, c, metav1.UpdateOptions{})
			return err
		}},
		{"patch another MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Patch(ctx, other.Name, types.JSONPatchType, []byte(`[{"op":"test","path":"/metadata/name","value":"`+other.Name+`"}]`), metav1.PatchOptions{})
			return err
		}},
		{"delete another MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			return cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, other.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}},
		{"delete its own MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			return cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, chartFullname, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}},
		{"delete its own ValidatingWebhookConfiguration", false, func(ctx context.Context) error {
			return cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, chartFullname, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		}},
		{"create a MutatingWebhookConfiguration", false, func(ctx context.Context) error {
			c := other.DeepCopy()
			c.Name, c.ResourceVersion = "irsa-rel-rbac-new", ""
			_, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, c, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"create pods", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().Pods(ns).Create(ctx, simplePod("rbac", "probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"update serviceaccounts", false, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Update(ctx, serviceAccount("probe", ""), metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}},
		{"impersonate users (asked with a SelfSubjectAccessReview)", false, func(ctx context.Context) error {
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: "system:admin"},
			}}, metav1.CreateOptions{})
			switch {
			case err != nil:
				return err
			case r.Status.Allowed:
				return nil
			}
			return apierrors.NewForbidden(authorizationv1.Resource("users"), "system:admin", errors.New(r.Status.Reason))
		}},
	}
	// Rights the binary never uses are not granted at all, even where the API server's
	// default policy grants them anyway (every ServiceAccount may read /openid/v1/jwks through
	// system:service-account-issuer-discovery, so impersonation cannot show this one).
	t.Run("the ClusterRole names only the nonResourceURLs the binary reads", func(t *testing.T) {
		for _, obj := range objs {
			cr, ok := obj.(*rbacv1.ClusterRole)
			if !ok || cr.Name != chartFullname {
				continue
			}
			for _, r := range cr.Rules {
				for _, u := range r.NonResourceURLs {
					if u != "/.well-known/openid-configuration" {
						t.Errorf("ClusterRole %s grants %v on %s, which the webhook never reads", cr.Name, r.Verbs, u)
					}
				}
			}
		}
	})
	// RBAC objects take effect once the API server's authorizer has seen them: wait for the
	// first right instead of failing on a lag.
	if err := poll(ctx, 30*time.Second, func() (bool, string) {
		err := tests[0].do(ctx)
		return err == nil, fmt.Sprint(err)
	}); err != nil {
		t.Fatalf("the chart's ClusterRole never took effect: %v", err)
	}
	for _, tc := range tests {
		t.Run(map[bool]string{true: "can ", false: "cannot "}[tc.allowed]+tc.name, func(t *testing.T) {
			err := tc.do(t.Context())
			switch {
			case tc.allowed && err != nil:
				t.Errorf("refused: %v", err)
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Errorf("want Forbidden, got %v", err)
			}
		})
	}

	t.Run("the binary runs with exactly these rights", func(t *testing.T) {
		runWithChartRights(t, deploy, ns, port, own.Name)
	})
}

// runWithChartRights runs `irsa-webhook serve` with the chart's arguments (self-managed
// certificates, trust check warn) as the webhook's ServiceAccount: a kubeconfig with the
// admin client certificate and `as`/`as-groups` makes every request the webhook sends use its
// identity and rights only.
func runWithChartRights(t *testing.T, deploy *appsv1.Deployment, ns string, port int, mutatingName string) {
	ctx := t.Context()
	dir := suite.TestDir(t)
	kc, err := clientcmd.LoadFromFile(suite.CP.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range kc.AuthInfos {
		a.Impersonate, a.ImpersonateGroups = webhookSA, webhookGroups
	}
	kubeconfig := filepath.Join(dir, "kubeconfig-as-webhook")
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	var args []string
	// The chart's arguments, less those that place the server in a pod: ports and
	// certificate paths (the standard loopback flags replace them), plus the DNS name the
	// API server calls here (https://localhost:PORT instead of the Service).
	local := []string{"port", "bind-address", "metrics-bind-address", "health-probe-bind-address", "tls-cert-file", "tls-key-file"}
	c := deploy.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("the chart's container args do not start with serve: %q", c.Args)
	}
	for _, a := range c.Args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !containsString(local, name) {
			args = append(args, a)
		}
	}
	for _, want := range []string{"--cert-mode=self-managed", "--trust-check=warn", "--mutating-webhook-configuration=" + chartFullname} {
		if !containsString(args, want) {
			t.Fatalf("the chart's default args lack %s: %q", want, args)
		}
	}
	// The chart's 5s shutdown delay would only slow the test's cleanup down.
	args = append(args, "--cert-dns-names=localhost", "--shutdown-delay=0s")
	// The chart mounts an emptyDir where the webhook writes its certificate.
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	// In the chart's namespace: the drill's webhooks (failurePolicy Fail) are not running yet.
	scraper, stranger := metricsCallers(t, chartNamespace)
	iam := newIAM(t)
	w := startWebhookWith(t, webhookproc.Options{
		Kubeconfig: kubeconfig, Port: port,
		TLS:  webhookproc.TLS{CertFile: filepath.Join(dir, "tls", "tls.crt"), KeyFile: filepath.Join(dir, "tls", "tls.key")},
		Args: args, Env: iamEnv(t, iam, "rbac-drill-secret"),
	})
	t.Logf("ready with the chart's args: %q", args)

	sec, err := suite.Admin.CoreV1().Secrets(chartNamespace).Get(ctx, chartSecret, metav1.GetOptions{})
	if err != nil || len(sec.Data["tls.crt"]) == 0 || len(sec.Data["ca.crt"]) == 0 {
		t.Errorf("the webhook did not fill its Secret (err %v, keys %v)", err, keys(sec))
	}
	cfg, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mutatingName, metav1.GetOptions{})
	if err != nil || len(cfg.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Fatalf("the webhook did not write its caBundle: %v", err)
	}
	// The API server calls it (trust check and pod webhook, both failurePolicy Fail).
	cs, warns := warningClient(t)
	role := "arn:aws:iam::" + testAccount + ":role/RBACDrill"
	iam.PutRole(role, trustPolicy(t, role, ns, "app"))
	createServiceAccount(t, cs, ns, "app", role)
	if got := warns.Take(""); len(got) > 0 {
		t.Errorf("trusted ServiceAccount got warnings %q", got)
	}
	waitMutating(t, ns, "app", w)
	p, err := cs.CoreV1().Pods(ns).Create(ctx, simplePod("rbac-app", "app"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) || !hasTokenVolume(p) {
		t.Errorf("pod not mutated by the webhook running with the chart's rights")
	}
	checkMetricsAccess(t, w, sec, scraper, stranger)
	var denied []string
	for _, l := range logLines(t, w.LogPath()) {
		if strings.Contains(strings.ToLower(l), "forbidden") {
			denied = append(denied, l)
		}
	}
	if len(denied) > 0 {
		t.Errorf("the webhook was refused something with the chart's rights:\n%s", strings.Join(denied, "\n"))
	}
}

// metricsCallers creates two ServiceAccounts in ns, one bound to the chart's metrics-reader
// ClusterRole, and returns a token of each. Done before the webhook starts: its metrics
// filter caches a denial for 30s, so a binding must not lag behind the first scrape.
func metricsCallers(t *testing.T, ns string) (scraper, stranger string) {
	t.Helper()
	ctx := t.Context()
	token := func(name string) string {
		createServiceAccount(t, suite.Admin, ns, name, "")
		tr, err := suite.Admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token of %s/%s: %v", ns, name, err)
		}
		return tr.Status.Token
	}
	scraper, stranger = token("metrics-scraper"), token("metrics-stranger")
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "irsa-rel-metrics-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: chartFullname + "-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "metrics-scraper", Namespace: ns}},
	}
	if _, err := suite.Admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind the metrics reader: %v", err)
	}
	t.Cleanup(func() {
		_ = suite.Admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	return scraper, stranger
}

// checkMetricsAccess: the chart's default serves /metrics over HTTPS with the webhook's
// certificate (verified with the CA of its Secret) behind Kubernetes authentication and
// authorization: no token is 401, a token whose identity may not get /metrics is 403, a
// token bound to the metrics-reader ClusterRole gets the metrics.
func checkMetricsAccess(t *testing.T, w *webhook, sec *corev1.Secret, scraper, stranger string) {
	t.Helper()
	pool := x509.NewCertPool()
	if sec == nil || !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
		t.Fatal("no CA in the webhook's Secret to verify the metrics endpoint with")
	}
	client := &http.Client{Timeout: webhookCallTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", w.Options().MetricsPort)
	get := func(token string) (int, string, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(body), err
	}
	t.Run("metrics: refused without a token", func(t *testing.T) {
		if code, _, err := get(""); err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: HTTP %d, %v; want 401", url, code, err)
		}
	})
	t.Run("metrics: refused to an identity that may not read them", func(t *testing.T) {
		if code, _, err := get(stranger); err != nil || code != http.StatusForbidden {
			t.Errorf("GET %s as metrics-stranger: HTTP %d, %v; want 403", url, code, err)
		}
	})
	t.Run("metrics: served to the metrics reader", func(t *testing.T) {
		err := poll(t.Context(), 30*time.Second, func() (bool, string) {
			code, body, err := get(scraper)
			return err == nil && code == http.StatusOK && strings.Contains(body, "irsa_webhook_admission_requests_total"),
				fmt.Sprintf("HTTP %d, %v: %.200s", code, err, body)
		})
		if err != nil {
			t.Errorf("GET %s as metrics-scraper: %v", url, err)
		}
	})
	t.Run("metrics: plain HTTP is not served", func(t *testing.T) {
		if code, _, err := webhookproc.Get(t.Context(), strings.Replace(url, "https://", "http://", 1)); err == nil && code == http.StatusOK {
			t.Errorf("GET %s over plain HTTP: HTTP %d, want refused", url, code)
		}
	})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func keys(s *corev1.Secret) []string {
	if s == nil {
		return nil
	}
	var out []string
	for k := range s.Data {
		out = append(out, k)
	}
	return out
}
