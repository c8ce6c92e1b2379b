package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/irsa-webhook/irsa-webhook/certs"
)

// testIssuer is deliberately not the apiserver's own URL, like an S3-hosted IRSA issuer.
const testIssuer = "https://oidc.irsa.test/cluster-a"

// cp is the package's control plane, started once by TestMain.
var cp *ControlPlane

func TestMain(m *testing.M) {
	os.Exit(Main(m, Options{IssuerURL: testIssuer}, func(c *ControlPlane) { cp = c }))
}

func TestControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(cp.Config())
	const ns, sa = "irsa-controlplane-test", "app"

	if v, err := cs.Discovery().ServerVersion(); err != nil {
		t.Fatalf("get server version: %v", err)
	} else {
		t.Logf("kube-apiserver %s at %s, issuer %s", v.GitVersion, cp.Host(), cp.IssuerURL())
	}
	if cp.IssuerURL() != testIssuer {
		t.Fatalf("IssuerURL() = %q, want %q", cp.IssuerURL(), testIssuer)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}

	t.Run("ServiceAccount admission adds the kube-api-access volume", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app"},
			Spec: corev1.PodSpec{
				ServiceAccountName: sa,
				Containers:         []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}},
			},
		}
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod: %v", err)
		}
		i := slices.IndexFunc(got.Spec.Volumes, func(v corev1.Volume) bool {
			return strings.HasPrefix(v.Name, "kube-api-access-")
		})
		if i < 0 {
			t.Fatalf("pod volumes %v lack kube-api-access-*: ServiceAccount admission plugin is off", volumeNames(got.Spec.Volumes))
		}
		vol := got.Spec.Volumes[i]
		if vol.Projected == nil || !slices.ContainsFunc(vol.Projected.Sources, func(s corev1.VolumeProjection) bool {
			return s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == "token"
		}) {
			t.Errorf("volume %s is not a projected service-account token: %+v", vol.Name, vol.VolumeSource)
		}
		if !slices.ContainsFunc(got.Spec.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == vol.Name && m.MountPath == "/var/run/secrets/kubernetes.io/serviceaccount"
		}) {
			t.Errorf("container mounts %+v lack %s", got.Spec.Containers[0].VolumeMounts, vol.Name)
		}
	})

	var token string
	t.Run("TokenRequest for sts.amazonaws.com", func(t *testing.T) {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{AudienceSTS}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		token = tr.Status.Token
		header, claims := decodeJWT(t, token)
		if header.Alg != "RS256" {
			t.Errorf("token alg = %q, want RS256 (STS and IAM OIDC providers need RSA)", header.Alg)
		}
		if claims.Issuer != testIssuer {
			t.Errorf("iss = %q, want %q", claims.Issuer, testIssuer)
		}
		if want := "system:serviceaccount:" + ns + ":" + sa; claims.Subject != want {
			t.Errorf("sub = %q, want %q", claims.Subject, want)
		}
		if !slices.Contains(claims.Audience, AudienceSTS) {
			t.Errorf("aud = %q, want it to contain %q", claims.Audience, AudienceSTS)
		}
	})

	t.Run("OIDC discovery is served for the issuer", func(t *testing.T) {
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		getJSON(ctx, t, cs.RESTClient(), "/.well-known/openid-configuration", &disc)
		if disc.Issuer != testIssuer {
			t.Errorf("discovery issuer = %q, want %q", disc.Issuer, testIssuer)
		}
		if disc.JWKSURI == "" {
			t.Errorf("discovery has no jwks_uri")
		}
		var jwks struct {
			Keys []struct {
				Kty string `json:"kty"`
				Alg string `json:"alg"`
			} `json:"keys"`
		}
		getJSON(ctx, t, cs.RESTClient(), "/openid/v1/jwks", &jwks)
		if len(jwks.Keys) != 1 || jwks.Keys[0].Kty != "RSA" || jwks.Keys[0].Alg != "RS256" {
			t.Errorf("JWKS keys = %+v, want one RSA RS256 key", jwks.Keys)
		}
	})

	t.Run("kubectl uses the kubeconfig", func(t *testing.T) {
		out, err := cp.Kubectl("get", "serviceaccount", sa, "--namespace", ns, "--output", "name").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "serviceaccount/"+sa {
			t.Errorf("kubectl printed %q, want serviceaccount/%s", got, sa)
		}
	})

	t.Run("RBAC authorizes", func(t *testing.T) {
		alice, err := cp.UserConfig("alice", []string{"developers"})
		if err != nil {
			t.Fatal(err)
		}
		impersonated := cp.Config()
		impersonated.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa}
		for name, cfg := range map[string]*rest.Config{"client certificate": alice, "impersonation": impersonated} {
			_, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: list secrets error = %v, want Forbidden", name, err)
			}
		}
	})

	t.Run("objects and tokens survive an apiserver restart", func(t *testing.T) {
		began := time.Now()
		if err := cp.RestartAPIServer(ctx); err != nil {
			t.Fatalf("restart: %v", err)
		}
		t.Logf("kube-apiserver restarted in %v", time.Since(began).Round(time.Millisecond))
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
			t.Errorf("get service account after restart: %v", err)
		}
		if _, err := cs.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{}); err != nil {
			t.Errorf("get pod after restart: %v", err)
		}
		if token == "" {
			t.Skip("no token from the TokenRequest subtest")
		}
		review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{AudienceSTS}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("review token after restart: %v", err)
		}
		if want := "system:serviceaccount:" + ns + ":" + sa; !review.Status.Authenticated || review.Status.User.Username != want {
			t.Errorf("token review = %+v, want authenticated as %s (signing key must survive the restart)", review.Status, want)
		}
	})
}

// TestWebhookIsCalled proves that nothing in the apiserver's flags keeps it from calling a
// webhook registered by URL on loopback with a caBundle from the certs package.
func TestWebhookIsCalled(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	now := time.Now()
	ca, err := certs.NewCA("webhook-test-ca", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(nil, []net.IP{net.IPv4(127, 0, 0, 1)}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	calls := &AllowingWebhook{}
	srv := httptest.NewUnstartedServer(calls)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	cs := kubernetes.NewForConfigOrDie(cp.Config())
	const ns = "irsa-webhook-reach"
	label := map[string]string{"irsa-controlplane-test": "webhook"}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: label}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	url := srv.URL + "/mutate"
	fail, none := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "irsa-controlplane-test"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "reach.irsa.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca.CertPEM()},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: label},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create webhook configuration: %v", err)
	}
	defer func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	}()

	// The apiserver picks new webhook configurations up from an informer: poll with dry runs.
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var lastErr error
	for calls.Calls() == 0 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}
		_, lastErr = cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		select {
		case <-ctx.Done():
			t.Fatalf("webhook at %s never called (last create error: %v)", url, lastErr)
		case <-ticker.C:
		}
	}
	if lastErr != nil {
		t.Errorf("create with the webhook called: %v", lastErr)
	}
}

type jwtHeader struct {
	Alg string `json:"alg"`
}

type jwtClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
}

// audience is the JWT "aud" claim, a string or a list of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// decodeJWT decodes a JWT's header and claims without verifying it.
func decodeJWT(t *testing.T, token string) (jwtHeader, jwtClaims) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	var h jwtHeader
	var c jwtClaims
	for i, v := range []any{&h, &c} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("decode JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("parse JWT part %d %s: %v", i, raw, err)
		}
	}
	return h, c
}

func getJSON(ctx context.Context, t *testing.T, rc rest.Interface, path string, v any) {
	t.Helper()
	raw, err := rc.Get().AbsPath(path).DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("parse %s: %v\n%s", path, err, raw)
	}
}

func volumeNames(vols []corev1.Volume) []string {
	names := make([]string, len(vols))
	for i, v := range vols {
		names[i] = v.Name
	}
	return names
}

func TestStartFailureReportsTheLog(t *testing.T) {
	began := time.Now()
	_, err := Start(t.Context(), Options{Dir: cp.opts.Dir, APIServerFlags: map[string]string{"no-such-flag": "x"}, StartTimeout: 30 * time.Second})
	if err == nil {
		t.Fatal("Start with an unknown apiserver flag succeeded")
	}
	t.Logf("failed start returned in %v", time.Since(began).Round(time.Millisecond))
	m := regexp.MustCompile(`logs kept in (\S+)\)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error does not name the kept logs: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(m[1])) })
	for _, want := range []string{"kube-apiserver exited before it was ready", "first errors in", "unknown flag: --no-such-flag", "last "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(m[1])); len(entries) != 1 {
		t.Errorf("after a failed start %s holds %d entries, want only logs", filepath.Dir(m[1]), len(entries))
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantErrs []string
	}{
		{name: "zero value", opts: Options{}},
		{name: "https issuer with path", opts: Options{IssuerURL: "https://oidc.example.com/id/ABC"}},
		{name: "http issuer", opts: Options{IssuerURL: "http://oidc.example.com"}, wantErrs: []string{"must be https"}},
		{name: "issuer with query", opts: Options{IssuerURL: "https://oidc.example.com?x=1"}, wantErrs: []string{"without query"}},
		{
			name:     "every problem at once",
			opts:     Options{IssuerURL: "oidc", Audiences: []string{"a,b", ""}, StartTimeout: -1, APIServerFlags: map[string]string{"--v": "4"}},
			wantErrs: []string{`issuer URL "oidc"`, `audience "a,b"`, `audience ""`, "negative", `flag name "--v"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validate()
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate succeeded, want errors %q", tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	tests := []struct {
		name       string
		log        string
		wantErrors []string
		wantTail   string
	}{
		{
			name:       "klog error and cobra error",
			log:        "I0101 ok\nE0101 12:00:00 storage failed\nError: unknown flag: --x\nUsage:\n  kube-apiserver",
			wantErrors: []string{"E0101 12:00:00 storage failed", "Error: unknown flag: --x"},
			wantTail:   "last 5 lines",
		},
		{
			name:       "etcd JSON error",
			log:        `{"level":"info","msg":"ok"}` + "\n" + `{"level":"fatal","msg":"listen failed"}`,
			wantErrors: []string{`"msg":"listen failed"`},
			wantTail:   "last 2 lines",
		},
		{name: "no errors", log: "I0101 fine\n", wantTail: "last 1 lines"},
		{name: "long log keeps the tail", log: strings.Repeat("line\n", 100), wantTail: "last 30 lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := excerpt("x", "x.log", []byte(tt.log))
			if hasErrors := strings.Contains(got, "first errors"); hasErrors != (len(tt.wantErrors) > 0) {
				t.Errorf("excerpt has error section: %v, want %v:\n%s", hasErrors, len(tt.wantErrors) > 0, got)
			}
			for _, want := range append(tt.wantErrors, tt.wantTail) {
				if !strings.Contains(got, want) {
					t.Errorf("excerpt lacks %q:\n%s", want, got)
				}
			}
		})
	}
}

func TestFindUp(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(filepath.Join(root, "test", "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, buildScript), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		from    string
		want    string
		wantErr bool
	}{
		{name: "at the root", from: root, want: root},
		{name: "three levels down", from: deep, want: root},
		{name: "outside", from: filepath.Dir(root), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findUp(tt.from, buildScript)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("findUp(%s) = %q, %v; want %q, error %v", tt.from, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
