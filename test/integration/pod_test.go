package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/jwtclaims"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/pod"
)

const (
	tokenMountPath   = irsa.DefaultTokenMountPath
	tokenFile        = irsa.DefaultTokenMountPath + "/" + irsa.TokenFileName
	kubeAPIAccess    = "kube-api-access-" // volume the ServiceAccount admission plugin adds
	kubeAPIMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// goldenDir holds the pod handler's golden files: the same expectations, checked here through
// the API server instead of an httptest recorder.
const goldenDir = "../../webhook/pod/testdata"

// TestGolden creates each golden case's ServiceAccount and Pod through the API server and
// compares what the API server stored with want.yaml, and the warnings kubectl would print with
// warnings.txt. Only the parts of the pod the webhook may touch are compared (annotations,
// labels, volumes, and each container's env and mounts), without the kube-api-access volume
// the ServiceAccount plugin adds and the API server's defaults. Cases that need other server
// flags, or fields the API server drops (unknown-fields-survive), are left to the unit tests.
func TestGolden(t *testing.T) {
	for _, name := range []string{
		"basic",
		"no-role",
		"invalid-role-arn",
		"partition-and-path",
		"audience-and-default-sa",
		"existing-volume-and-mounts",
		"mount-path-conflict",
		"mount-path-conflict-every-container",
		"init-and-native-sidecar",
		"skip-containers",
		"skip-label",
		"sts-regional-sa-true",
		"token-expiration-pod-wins",
		"token-expiration-clamped-and-ignored",
		"token-expiration-above-max",
		"windows-node-selector",
		"windows-beta-node-selector",
		"windows-spec-os",
		"windows-node-affinity",
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(goldenDir, name)
			var sa corev1.ServiceAccount
			var in, want corev1.Pod
			readYAML(t, filepath.Join(dir, "serviceaccount.yaml"), &sa)
			readYAML(t, filepath.Join(dir, "pod.yaml"), &in)
			readYAML(t, filepath.Join(dir, "want.yaml"), &want)
			wantWarnings, err := os.ReadFile(filepath.Join(dir, "warnings.txt"))
			if err != nil {
				t.Fatal(err)
			}

			cs, w := newClient(t)
			ns := newNamespace(t, cs, "golden")
			goldenNS := in.Namespace
			sa.Namespace, in.Namespace = ns, ns
			if _, err := cs.CoreV1().ServiceAccounts(ns).Create(t.Context(), &sa, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create serviceaccount: %v", err)
			}
			got := createPod(t, cs, ns, &in)

			if g, wt := webhookView(t, got), webhookView(t, &want); g != wt {
				t.Errorf("stored pod differs from %s/want.yaml (webhook-relevant fields; webhook log %s)\n--- want\n%s--- got\n%s", dir, suite.webhook.LogPath(), wt, g)
			}
			var gotWarnings strings.Builder
			for _, m := range w.Take(pod.WarningPrefix) {
				fmt.Fprintln(&gotWarnings, strings.ReplaceAll(m, ns+"/", goldenNS+"/"))
			}
			if gotWarnings.String() != string(wantWarnings) {
				t.Errorf("warnings differ from %s/warnings.txt\n--- want\n%s--- got\n%s", dir, wantWarnings, gotWarnings.String())
			}
		})
	}
}

// webhookView renders the parts of a pod the webhook may change, as YAML, without the
// ServiceAccount plugin's kube-api-access volume and mounts and the projected volumes'
// defaulted defaultMode.
func webhookView(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	type container struct {
		Name         string               `json:"name"`
		Env          []corev1.EnvVar      `json:"env,omitempty"`
		VolumeMounts []corev1.VolumeMount `json:"volumeMounts,omitempty"`
	}
	containers := func(cs []corev1.Container) []container {
		var out []container
		for _, c := range cs {
			v := container{Name: c.Name, Env: c.Env}
			for _, m := range c.VolumeMounts {
				if !strings.HasPrefix(m.Name, kubeAPIAccess) {
					v.VolumeMounts = append(v.VolumeMounts, m)
				}
			}
			out = append(out, v)
		}
		return out
	}
	var volumes []corev1.Volume
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, kubeAPIAccess) {
			continue
		}
		v = *v.DeepCopy()
		if v.Projected != nil {
			v.Projected.DefaultMode = nil
		}
		volumes = append(volumes, v)
	}
	view := struct {
		Annotations    map[string]string `json:"annotations,omitempty"`
		Labels         map[string]string `json:"labels,omitempty"`
		InitContainers []container       `json:"initContainers,omitempty"`
		Containers     []container       `json:"containers,omitempty"`
		Volumes        []corev1.Volume   `json:"volumes,omitempty"`
	}{p.Annotations, p.Labels, containers(p.Spec.InitContainers), containers(p.Spec.Containers), volumes}
	out, err := yaml.Marshal(view)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRoleInjection checks one mutated pod field by field: exactly one token volume, one
// read-only mount and the two variables in every container and init container, and the
// ServiceAccount plugin's kube-api-access volume and mounts exactly as on a pod the webhook
// left alone.
func TestRoleInjection(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "inject")
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))
	newPod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{
				ServiceAccountName: "s3-writer",
				InitContainers:     []corev1.Container{{Name: "init", Image: "registry.invalid/init:1"}},
				Containers: []corev1.Container{
					{Name: "app", Image: "registry.invalid/app:1", Env: []corev1.EnvVar{{Name: "S3_BUCKET", Value: "my-app-uploads"}}},
					{Name: "sidecar", Image: "registry.invalid/sidecar:1"},
				},
			},
		}
	}
	got := createPod(t, cs, ns, newPod("mutated", nil))
	reference := createPod(t, cs, ns, newPod("reference", map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel): "true"}))

	exp := irsa.DefaultTokenExpiration
	wantVolume := corev1.Volume{Name: irsa.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: irsa.DefaultTokenAudience, ExpirationSeconds: &exp, Path: irsa.TokenFileName,
		}}},
	}}}
	var names []string
	for _, v := range got.Spec.Volumes {
		names = append(names, v.Name)
		if v.Name != irsa.VolumeName {
			continue
		}
		v.Projected.DefaultMode = nil // defaulted by the API server
		if !reflect.DeepEqual(v, wantVolume) {
			t.Errorf("token volume = %s, want %s", toJSON(t, v), toJSON(t, wantVolume))
		}
	}
	if len(names) != 2 || names[1] != irsa.VolumeName || !strings.HasPrefix(names[0], kubeAPIAccess) {
		t.Errorf("volumes = %q, want [kube-api-access-* %s]", names, irsa.VolumeName)
	}
	if i, j := kubeAPIAccessVolume(got), kubeAPIAccessVolume(reference); i == nil || j == nil || !reflect.DeepEqual(i.VolumeSource, j.VolumeSource) {
		t.Errorf("kube-api-access volume = %s, want as on the unmutated pod: %s", toJSON(t, i), toJSON(t, j))
	}

	all := slices.Concat(got.Spec.InitContainers, got.Spec.Containers)
	refs := slices.Concat(reference.Spec.InitContainers, reference.Spec.Containers)
	for i, c := range all {
		var tokenMounts []corev1.VolumeMount
		for _, m := range c.VolumeMounts {
			if m.Name == irsa.VolumeName || m.MountPath == tokenMountPath {
				tokenMounts = append(tokenMounts, m)
			}
		}
		if want := (corev1.VolumeMount{Name: irsa.VolumeName, MountPath: tokenMountPath, ReadOnly: true}); len(tokenMounts) != 1 || !reflect.DeepEqual(tokenMounts[0], want) {
			t.Errorf("container %s: token mounts %s, want exactly %s", c.Name, toJSON(t, tokenMounts), toJSON(t, want))
		}
		if m, r := kubeAPIAccessMount(c), kubeAPIAccessMount(refs[i]); m == nil || r == nil || m.MountPath != kubeAPIMountPath || m.MountPath != r.MountPath || m.ReadOnly != r.ReadOnly {
			t.Errorf("container %s: kube-api-access mount %s, want as on the unmutated pod: %s", c.Name, toJSON(t, m), toJSON(t, r))
		}
		wantEnv := slices.Concat(refs[i].Env, []corev1.EnvVar{
			{Name: irsa.EnvRoleARN, Value: testRoleARN},
			{Name: irsa.EnvWebIdentityTokenFile, Value: tokenFile},
		})
		if !reflect.DeepEqual(c.Env, wantEnv) {
			t.Errorf("container %s: env %s, want %s", c.Name, toJSON(t, c.Env), toJSON(t, wantEnv))
		}
	}
}

func kubeAPIAccessVolume(p *corev1.Pod) *corev1.Volume {
	for i := range p.Spec.Volumes {
		if strings.HasPrefix(p.Spec.Volumes[i].Name, kubeAPIAccess) {
			return &p.Spec.Volumes[i]
		}
	}
	return nil
}

func kubeAPIAccessMount(c corev1.Container) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if strings.HasPrefix(c.VolumeMounts[i].Name, kubeAPIAccess) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNotMutated checks the pods the webhook must leave alone, and, through the webhook's own
// counters, who decided: the webhook (no role, excluded namespace) or the API server's object
// selector (skip label: the webhook is not even called).
func TestNotMutated(t *testing.T) {
	skipLabel := irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel)
	tests := []struct {
		name        string
		namespace   string // empty: a new namespace
		saAnnots    map[string]string
		podLabels   map[string]string
		wantOutcome pod.Outcome // the pod webhook's outcome counter that must rise by one; empty: no call
	}{
		{name: "serviceaccount without role", saAnnots: map[string]string{"example.com/unrelated": "x"}, wantOutcome: pod.OutcomeNoRole},
		{name: "excluded namespace refused by the webhook", namespace: excludedNamespace, saAnnots: withRole(testRoleARN), wantOutcome: pod.OutcomeExcluded},
		{name: "skip label, not sent by the API server", saAnnots: withRole(testRoleARN), podLabels: map[string]string{skipLabel: "true"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, _ := newClient(t)
			ns := tc.namespace
			if ns == "" {
				ns = newNamespace(t, cs, "unchanged")
			}
			sa := fmt.Sprintf("sa-%d", i)
			createServiceAccount(t, cs, ns, sa, tc.saAnnots)
			t.Cleanup(func() { _ = cs.CoreV1().ServiceAccounts(ns).Delete(context.Background(), sa, metav1.DeleteOptions{}) })
			before := scrape(t, suite.webhook)
			p := simplePod("unchanged", sa)
			p.Labels = tc.podLabels
			got := createPod(t, cs, ns, p)
			t.Cleanup(func() { _ = cs.CoreV1().Pods(ns).Delete(context.Background(), got.Name, metav1.DeleteOptions{}) })
			after := scrape(t, suite.webhook)

			if slices.ContainsFunc(got.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == irsa.VolumeName }) {
				t.Errorf("pod got the %s volume", irsa.VolumeName)
			}
			for _, c := range got.Spec.Containers {
				if hasEnv(c, irsa.EnvRoleARN) || hasEnv(c, irsa.EnvWebIdentityTokenFile) || len(c.VolumeMounts) != 1 {
					t.Errorf("container %s was changed: env %s, mounts %s", c.Name, toJSON(t, c.Env), toJSON(t, c.VolumeMounts))
				}
			}
			calls := counter(after, "irsa_webhook_admission_requests_total", "webhook", "pod") - counter(before, "irsa_webhook_admission_requests_total", "webhook", "pod")
			switch {
			case tc.wantOutcome == "" && calls != 0:
				t.Errorf("the webhook was called %v times, want 0 (objectSelector)", calls)
			case tc.wantOutcome != "":
				delta := counter(after, "irsa_webhook_pod_mutations_total", "outcome", string(tc.wantOutcome)) - counter(before, "irsa_webhook_pod_mutations_total", "outcome", string(tc.wantOutcome))
				if calls != 1 || delta != 1 {
					t.Errorf("webhook calls %v and outcome %q count rose by %v, want 1 and 1", calls, tc.wantOutcome, delta)
				}
			}
		})
	}
}

// TestServiceAccountPodRace creates a ServiceAccount and at once a pod using it, 50 times: the
// webhook's cache has usually not seen the ServiceAccount yet, so each pod depends on the live
// GET on a cache miss. None may come back without credentials.
func TestServiceAccountPodRace(t *testing.T) {
	const rounds = 50
	cs, w := newClient(t)
	ns := newNamespace(t, cs, "race")
	var misses []string
	for i := range rounds {
		name := fmt.Sprintf("racer-%02d", i)
		createServiceAccount(t, cs, ns, name, withRole(testRoleARN))
		p := createPod(t, cs, ns, simplePod(name, name))
		if v, _ := envValue(p.Spec.Containers[0], irsa.EnvRoleARN); v != testRoleARN {
			misses = append(misses, name)
		}
	}
	if len(misses) > 0 {
		t.Errorf("%d of %d pods created right after their ServiceAccount lack %s: %q\nwarnings: %q", len(misses), rounds, irsa.EnvRoleARN, misses, w.Take(""))
	}
}

// TestAdmissionWarnings checks that the webhook's warnings reach the client (kubectl prints
// them) and that the clamped value is what the pod gets.
func TestAdmissionWarnings(t *testing.T) {
	cs, w := newClient(t)
	ns := newNamespace(t, cs, "warn")
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))
	p := simplePod("short-token", "s3-writer")
	p.Annotations = map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.TokenExpirationAnnotation): "100"}
	got := createPod(t, cs, ns, p)

	ws := w.Take(pod.WarningPrefix)
	if len(ws) != 1 || !strings.Contains(ws[0], "raised to the minimum of 600") || !strings.Contains(ws[0], ns+"/short-token") {
		t.Errorf("warnings = %q, want one about pod %s/short-token raised to the minimum of 600", ws, ns)
	}
	v := tokenVolume(got)
	if v == nil || v.ExpirationSeconds == nil || *v.ExpirationSeconds != irsa.MinTokenExpiration {
		t.Errorf("token projection = %s, want expirationSeconds %d", toJSON(t, v), irsa.MinTokenExpiration)
	}
}

// tokenVolume returns the webhook's projected token source, or nil.
func tokenVolume(p *corev1.Pod) *corev1.ServiceAccountTokenProjection {
	for _, v := range p.Spec.Volumes {
		if v.Name == irsa.VolumeName && v.Projected != nil && len(v.Projected.Sources) == 1 {
			return v.Projected.Sources[0].ServiceAccountToken
		}
	}
	return nil
}

// TestTokenRequest asks for the token the kubelet would project into the mutated pod (its
// volume's audience and lifetime, bound to the pod) and checks the claims STS would match
// against the role's trust policy, and the signature against the issuer's published keys.
func TestTokenRequest(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "token")
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))
	p := createPod(t, cs, ns, simplePod("my-app", "s3-writer"))
	v := tokenVolume(p)
	if v == nil {
		t.Fatalf("pod has no %s volume: %s", irsa.VolumeName, toJSON(t, p.Spec.Volumes))
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "s3-writer", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{v.Audience},
		ExpirationSeconds: v.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("request token: %v", err)
	}
	c, err := jwtclaims.Decode(tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != suite.cp.IssuerURL() {
		t.Errorf("iss = %q, want %q", c.Issuer, suite.cp.IssuerURL())
	}
	if want := "system:serviceaccount:" + ns + ":s3-writer"; c.Subject != want {
		t.Errorf("sub = %q, want %q", c.Subject, want)
	}
	if !c.HasAudience(irsa.DefaultTokenAudience) {
		t.Errorf("aud = %q, want it to contain %q", c.Audience, irsa.DefaultTokenAudience)
	}
	if want := time.Duration(*v.ExpirationSeconds) * time.Second; c.Lifetime() != want {
		t.Errorf("token lifetime = %v, want the volume's %v", c.Lifetime(), want)
	}
	if c.Kubernetes.Pod == nil || c.Kubernetes.Pod.Name != p.Name || c.Kubernetes.Pod.UID != string(p.UID) {
		t.Errorf("kubernetes.io pod claim = %+v, want %s (%s)", c.Kubernetes.Pod, p.Name, p.UID)
	}

	// What an OIDC relying party (STS) fetches: discovery document, then the keys.
	discovery, err := cs.CoreV1().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(t.Context())
	if err != nil {
		t.Fatalf("get OIDC discovery document: %v", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(discovery, &doc); err != nil || doc.Issuer != suite.cp.IssuerURL() {
		t.Errorf("discovery document issuer = %q (%v), want %q", doc.Issuer, err, suite.cp.IssuerURL())
	}
	jwks, err := cs.CoreV1().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(t.Context())
	if err != nil {
		t.Fatalf("get JWKS: %v", err)
	}
	if err := jwtclaims.VerifyRS256(tr.Status.Token, jwks); err != nil {
		t.Error(err)
	}
}

// TestReadiness checks that /readyz means "can mutate": a webhook that cannot reach the API
// server is alive but not ready, and after a crash and restart every pod created once it is
// ready again is mutated.
func TestReadiness(t *testing.T) {
	t.Run("API server unreachable: alive, not ready", func(t *testing.T) {
		port, err := webhookproc.FreePort() // nothing listens there once FreePort returns
		if err != nil {
			t.Fatal(err)
		}
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		cfg, err := clientcmd.LoadFromFile(suite.cp.KubeconfigPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cfg.Clusters {
			c.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
		}
		if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
			t.Fatal(err)
		}
		p, err := webhookproc.Start(webhookproc.Options{
			Binary: suite.binary, Kubeconfig: kubeconfig, TLS: suite.tls,
			LogPath:     filepath.Join(suite.dir, "webhook-unreachable.log"),
			Args:        baseArgs,
			StopTimeout: stopTimeout,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = p.Kill() }() // after a failed check; a no-op once stopped

		// Wait until the process is up: /healthz answers and the webhook server has started.
		var health, ready int
		var readyBody string
		deadline := time.Now().Add(readyTimeout)
		for {
			health, _, _ = webhookproc.Get(t.Context(), p.HealthURL("/healthz"))
			ready, readyBody, _ = webhookproc.Get(t.Context(), p.HealthURL("/readyz?verbose"))
			if health == http.StatusOK && strings.Contains(readyBody, "[+]webhook-server ok") {
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("webhook did not come up (exited %v; /healthz %d; /readyz %d %q)%s", p.Exited(), health, ready, readyBody, p.LogTail())
			}
			time.Sleep(pollEvery)
		}
		// Then it must stay not ready, for the serviceaccount cache (polled for a second).
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(pollEvery) {
			ready, readyBody, _ = webhookproc.Get(t.Context(), p.HealthURL("/readyz?verbose"))
			health, _, _ = webhookproc.Get(t.Context(), p.HealthURL("/healthz"))
			if ready == http.StatusOK || !strings.Contains(readyBody, "[-]serviceaccount-cache failed") || health != http.StatusOK {
				t.Fatalf("with the API server unreachable: /readyz %d %q, /healthz %d; want not ready because of the serviceaccount cache, and alive", ready, readyBody, health)
			}
		}
		// A pod being deleted gets SIGTERM: it must end the process even before the cache synced.
		if err := p.Stop(); err != nil {
			t.Errorf("%v: graceful shutdown hangs while the serviceaccount cache has not synced", err)
		}
	})

	t.Run("restart: ready means mutating", func(t *testing.T) {
		const pods = 20
		cs, _ := newClient(t)
		ns := newNamespace(t, cs, "restart")
		createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))

		if err := suite.webhook.Kill(); err != nil {
			t.Fatal(err)
		}
		// failurePolicy Fail: while the webhook is down, pods are refused, not admitted bare.
		if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), simplePod("while-down", "s3-writer"), metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("create pod while the webhook is down: err = %v, want failed calling webhook", err)
		}
		p, err := webhookproc.Start(suite.webhook.Options())
		if err != nil {
			t.Fatal(err)
		}
		suite.webhook = p
		if err := p.WaitReady(t.Context(), readyTimeout); err != nil {
			t.Fatal(err)
		}
		var bare []string
		for i := range pods {
			got, err := cs.CoreV1().Pods(ns).Create(t.Context(), simplePod(fmt.Sprintf("after-restart-%02d", i), "s3-writer"), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create pod %d right after readiness: %v%s", i, err, p.LogTail())
			}
			if !hasEnv(got.Spec.Containers[0], irsa.EnvRoleARN) {
				bare = append(bare, got.Name)
			}
		}
		if len(bare) > 0 {
			t.Errorf("%d of %d pods created right after the restarted webhook was ready lack %s: %q", len(bare), pods, irsa.EnvRoleARN, bare)
		}
	})
}

// TestDryRun checks that a dry-run creation is mutated (kubectl apply --dry-run=server shows
// the injection) and that nothing is stored.
func TestDryRun(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "dryrun")
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))
	got, err := cs.CoreV1().Pods(ns).Create(t.Context(), simplePod("dry", "s3-writer"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatalf("dry-run create: %v", err)
	}
	if v, _ := envValue(got.Spec.Containers[0], irsa.EnvRoleARN); v != testRoleARN {
		t.Errorf("dry-run pod %s = %q, want %q", irsa.EnvRoleARN, v, testRoleARN)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(t.Context(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get the dry-run pod: err = %v, want NotFound", err)
	}
}

// TestMetrics checks the webhook's own metrics on its /metrics endpoint after a mutation.
func TestMetrics(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "metrics")
	createServiceAccount(t, cs, ns, "s3-writer", withRole(testRoleARN))
	createPod(t, cs, ns, simplePod("counted", "s3-writer"))

	fams := scrape(t, suite.webhook)
	if n := counter(fams, "irsa_webhook_pod_mutations_total", "outcome", string(pod.OutcomeMutated)); n <= 0 {
		t.Errorf(`irsa_webhook_pod_mutations_total{outcome="mutated"} = %v, want > 0`, n)
	}
	h := metric(fams, "irsa_webhook_admission_duration_seconds", "webhook", "pod")
	if h == nil || h.GetHistogram() == nil || len(h.GetHistogram().GetBucket()) == 0 || h.GetHistogram().GetSampleCount() == 0 {
		t.Errorf(`irsa_webhook_admission_duration_seconds{webhook="pod"} = %v, want a histogram with buckets and samples`, h)
	}
}

// scrape reads the webhook's /metrics.
func scrape(t *testing.T, p *webhookproc.Process) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := webhookproc.GetAll(t.Context(), p.MetricsURL())
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", p.MetricsURL(), code, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", p.MetricsURL(), err)
	}
	return fams
}

// metric returns the sample of family name with label key=value, or nil.
func metric(fams map[string]*dto.MetricFamily, name, key, value string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == key && l.GetValue() == value {
				return m
			}
		}
	}
	return nil
}

// counter is metric's counter value, summed over the other labels; 0 when absent.
func counter(fams map[string]*dto.MetricFamily, name, key, value string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == key && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
