package reliability_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

var tlsVersionName = map[uint16]string{
	tls.VersionTLS10: "1.0", tls.VersionTLS11: "1.1", tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3",
}

// TestTLS checks the webhook's TLS versions and cipher-suite flag: by default TLS 1.0 and 1.1
// handshakes are refused and 1.2 and 1.3 accepted; with --tls-min-version=1.3, 1.2 is refused;
// HTTP/2 is negotiated only with --enable-http2;
// an insecure suite in --tls-cipher-suites makes the process exit 2 with a clear message.
func TestTLS(t *testing.T) {
	def := startWebhook(t, []string{"--trust-check=off"}, nil)
	only13 := startWebhook(t, []string{"--trust-check=off", "--tls-min-version=1.3"}, nil)
	// A control server with the same certificate that accepts TLS 1.0: the refusals below
	// must come from the webhook, not from a client that cannot speak old versions.
	control := oldTLSServer(t, def.tls)

	hostPort := func(w *webhook) string { return strings.TrimSuffix(strings.TrimPrefix(w.URL(""), "https://"), "/") }
	tests := []struct {
		name    string
		addr    string
		ca      []byte
		version uint16
		want    bool // handshake succeeds
	}{
		{"default refuses TLS 1.0", hostPort(def), def.tls.CAPEM, tls.VersionTLS10, false},
		{"default refuses TLS 1.1", hostPort(def), def.tls.CAPEM, tls.VersionTLS11, false},
		{"default accepts TLS 1.2", hostPort(def), def.tls.CAPEM, tls.VersionTLS12, true},
		{"default accepts TLS 1.3", hostPort(def), def.tls.CAPEM, tls.VersionTLS13, true},
		{"min 1.3 refuses TLS 1.2", hostPort(only13), only13.tls.CAPEM, tls.VersionTLS12, false},
		{"min 1.3 accepts TLS 1.3", hostPort(only13), only13.tls.CAPEM, tls.VersionTLS13, true},
		{"control: this client speaks TLS 1.0", control, def.tls.CAPEM, tls.VersionTLS10, true},
		{"control: this client speaks TLS 1.1", control, def.tls.CAPEM, tls.VersionTLS11, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(tc.ca)
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tc.addr,
				&tls.Config{RootCAs: pool, MinVersion: tc.version, MaxVersion: tc.version})
			if err == nil {
				defer conn.Close()
			}
			switch {
			case tc.want && err != nil:
				t.Errorf("TLS %s handshake refused: %v", tlsVersionName[tc.version], err)
			case tc.want && conn.ConnectionState().Version != tc.version:
				t.Errorf("negotiated %s, want %s", tlsVersionName[conn.ConnectionState().Version], tlsVersionName[tc.version])
			case !tc.want && err == nil:
				t.Errorf("TLS %s handshake accepted", tlsVersionName[tc.version])
			case !tc.want && !strings.Contains(err.Error(), "protocol version"):
				t.Errorf("TLS %s refused for another reason than the version: %v", tlsVersionName[tc.version], err)
			}
		})
	}

	t.Run("HTTP/2 is offered only with --enable-http2", func(t *testing.T) {
		h2 := startWebhook(t, []string{"--trust-check=off", "--enable-http2"}, nil)
		for _, tc := range []struct {
			name string
			w    *webhook
			want string
		}{
			{"default: http/1.1 although the client prefers h2", def, "http/1.1"},
			{"--enable-http2: h2", h2, "h2"},
		} {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(tc.w.tls.CAPEM)
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostPort(tc.w),
				&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("%s: negotiated %q, want %q", tc.name, got, tc.want)
			}
			conn.Close()
		}
	})

	t.Run("insecure cipher suites exit 2", func(t *testing.T) {
		for _, tc := range []struct{ suites, bad string }{
			{"TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_RC4_128_SHA"},
			{"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
			{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			cmd := exec.CommandContext(ctx, suite.Binary, "serve", "--kubeconfig="+suite.CP.KubeconfigPath(),
				"--tls-cert-file="+def.tls.CertFile, "--tls-key-file="+def.tls.KeyFile, "--bind-address=127.0.0.1",
				"--port=0", "--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:0",
				"--tls-cipher-suites="+tc.suites)
			out, err := cmd.CombinedOutput()
			cancel()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("--tls-cipher-suites=%s: %v, want exit 2; output:\n%s", tc.suites, err, out)
				continue
			}
			msg := string(out)
			if !strings.Contains(msg, "--tls-cipher-suites") || !strings.Contains(msg, tc.bad) || !strings.Contains(msg, "insecure") {
				t.Errorf("--tls-cipher-suites=%s: the message does not name the flag, the suite %s and why:\n%s", tc.suites, tc.bad, msg)
			}
			if strings.Count(strings.TrimSpace(msg), "\n") > 3 {
				t.Errorf("--tls-cipher-suites=%s: want a short message, got:\n%s", tc.suites, msg)
			}
		}
	})
}

// oldTLSServer serves TLS 1.0 and up with the webhook's certificate and returns its address.
func oldTLSServer(t *testing.T, certs webhookproc.TLS) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certs.CertFile, certs.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return l.Addr().String()
}

// randomSecret is a value that cannot appear in a log by chance.
func randomSecret(t *testing.T, prefix string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// TestLogsHoldNoSecrets runs a scenario full of secrets at --log-level=debug: pods with
// secret-looking env values and annotations, a TokenRequest token in a pod, trust checks with
// findings, IAM failures, malformed requests. No log line, admission warning or Event note
// may hold a token, an env value, a secret annotation value or a whole object. The log must
// hold every line the debug level promises (one per failed trust check, one per malformed
// request), and the warnings and Events must have been written, or the check proves nothing.
func TestLogsHoldNoSecrets(t *testing.T) {
	iam := newIAM(t)
	ownKey := randomSecret(t, "webhook-own-aws-secret-")
	w := startWebhook(t, []string{"--trust-check=warn", "--log-level=debug"}, iamEnv(t, iam, ownKey))
	registerPodWebhook(t, "logs", w)
	registerServiceAccountWebhook(t, "logs", w)
	ns := drillNamespace(t, "logs")
	ctx := t.Context()
	cs, warns := warningClient(t)
	var warnings []string // every admission warning of the drill
	takeWarnings := func() []string {
		w := warns.Take("")
		warnings = append(warnings, w...)
		return w
	}

	secrets := map[string]string{
		"the webhook's own AWS secret key": ownKey,
		"env AWS_SECRET_ACCESS_KEY":        randomSecret(t, "AKIA-SECRET-"),
		"env DB_PASSWORD":                  randomSecret(t, "db-password-"),
		"pod annotation":                   randomSecret(t, "pod-annotation-secret-"),
		"serviceaccount annotation":        randomSecret(t, "sa-annotation-secret-"),
	}
	// Trust checks with findings: a role trusting another ServiceAccount, a missing role, and
	// IAM throttling.
	mismatch := "arn:aws:iam::" + testAccount + ":role/LogsMismatch"
	iam.PutRole(mismatch, trustPolicy(t, mismatch, "elsewhere", "someone"))
	sa := serviceAccount("app", mismatch)
	sa.Annotations["irsa-reliability.test/api-key"] = secrets["serviceaccount annotation"]
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createServiceAccount(t, cs, ns, "ghost", "arn:aws:iam::"+testAccount+":role/DoesNotExist")
	iam.SetFault(iamserver.CodeThrottling)
	createServiceAccount(t, cs, ns, "throttled", "arn:aws:iam::"+testAccount+":role/Throttled")
	iam.SetFault("")
	if n := len(takeWarnings()); n != 3 {
		t.Fatalf("%d trust-check warnings, want one per ServiceAccount with findings (3)", n)
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{controlplane.AudienceSTS}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	token := tr.Status.Token
	secrets["TokenRequest token"] = token
	for i, part := range strings.Split(token, ".") {
		secrets[fmt.Sprintf("token part %d", i)] = part
	}

	secretPod := func(name, sa string) *corev1.Pod {
		p := simplePod(name, sa)
		p.Annotations = map[string]string{
			"irsa-reliability.test/db-password":                                    secrets["pod annotation"],
			irsa.Key(irsa.DefaultAnnotationPrefix, irsa.TokenExpirationAnnotation): "not-a-number",
		}
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "AWS_SECRET_ACCESS_KEY", Value: secrets["env AWS_SECRET_ACCESS_KEY"]},
			{Name: "DB_PASSWORD", Value: secrets["env DB_PASSWORD"]},
			{Name: "AWS_SESSION_TOKEN", Value: token},
		}
		return p
	}
	// Through the API server: mutated, dry run, missing ServiceAccount, role change.
	waitMutating(t, ns, "app", w)
	if p, err := cs.CoreV1().Pods(ns).Create(ctx, secretPod("mutated", "app"), metav1.CreateOptions{}); err != nil || !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) {
		t.Fatalf("pod not created and mutated: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, secretPod("dry-run", "app"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, secretPod("no-role", "throttled"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(takeWarnings()); n != 3 {
		t.Errorf("%d warnings for the 3 pods through the API server, want one each (invalid token expiration)", n)
	}
	got, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Annotations[roleAnnotation] = "arn:aws:iam::" + testAccount + ":role/LogsChanged"
	if _, err := cs.CoreV1().ServiceAccounts(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(takeWarnings()); n != 1 {
		t.Errorf("%d warnings for the role change, want 1 (the new role does not exist)", n)
	}
	// Straight to the webhook: a pod whose ServiceAccount does not exist (live GET), an
	// object that does not decode, and bodies that are not reviews, each holding secrets.
	client := newReviewClient(w.URL(webhookproc.PodPath), true, w.tls.CAPEM)
	defer client.close()
	a, err := client.mutate(ctx, ns, secretPod("missing-sa", "nobody"))
	if err == nil || !strings.Contains(err.Error(), "not mutated") {
		t.Errorf("pod of a missing ServiceAccount: %v, want admitted unchanged", err)
	}
	warnings = append(warnings, a.warnings...)
	uid, body := podReview(ns, secretPod("bad-object", "app"))
	bad := strings.Replace(string(body), `"containers":[`, `"containers":"`+secrets["env DB_PASSWORD"]+`","x":[`, 1)
	if a, err = client.post(ctx, uid, []byte(bad)); err != nil || !a.allowed || a.patched {
		t.Errorf("undecodable pod: %+v, %v; want allowed unchanged", a, err)
	}
	warnings = append(warnings, a.warnings...)
	malformed := []string{
		`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":` + secrets["env AWS_SECRET_ACCESS_KEY"] + `}}`,
		strings.Replace(string(body), "admission.k8s.io/v1", "admission.k8s.io/v2", 1), // a version no API server sends
		string(body[:len(body)/2]), // cut short inside the pod
		token,
	}
	for _, body := range malformed {
		if _, err := client.post(ctx, "x", []byte(body)); err == nil || !strings.Contains(err.Error(), "HTTP 400") {
			t.Errorf("malformed request: %v, want HTTP 400", err)
		}
	}
	// Events are written asynchronously, once their ServiceAccount is stored: one for each of
	// the three ServiceAccounts created with findings (the role change's joins app's as a
	// repeat of the same reason).
	var notes []string
	if err := poll(ctx, 30*time.Second, func() (bool, string) {
		notes = eventNotes(t, ns)
		return len(notes) >= 3, fmt.Sprintf("%d Events: %q", len(notes), notes)
	}); err != nil {
		t.Errorf("trust-check Events: %v", err)
	}
	// The trust check's debug lines come with its answer: the probe of
	// registerServiceAccountWebhook, app, ghost, throttled and the role change.
	const wantTrustFailed = 5
	lines := logLines(t, w.LogPath())
	debug, trustFailed, rejected := 0, 0, 0
	for _, l := range lines {
		if strings.Contains(l, `"level":"debug"`) {
			debug++
		}
		if strings.Contains(l, "trust check failed") {
			trustFailed++
		}
		if strings.Contains(l, "rejected malformed admission request") {
			rejected++
		}
	}
	if debug == 0 || trustFailed != wantTrustFailed || rejected != len(malformed) {
		t.Errorf("the log has %d debug lines, %d \"trust check failed\" lines (want %d) and %d \"rejected malformed admission request\" lines (want %d): the debug level does not log what it promises, and the checks below may prove nothing",
			debug, trustFailed, wantTrustFailed, rejected, len(malformed))
	}
	wholeObject := []string{`"spec":{`, `"containers"`, `"metadata":{`, `"env":[`, `"annotations":{`, `"volumes"`}
	const maxLine = 2000 // bytes; a whole pod or ServiceAccount would not fit
	for i, l := range lines {
		if i == 0 {
			continue // webhookproc's header: the command line
		}
		if len(l) > maxLine {
			t.Errorf("log line %d is %d bytes long (whole object?): %.300s...", i+1, len(l), l)
		}
		for what, s := range secrets {
			if strings.Contains(l, s) {
				t.Errorf("log line %d holds the %s: %s", i+1, what, l)
			}
		}
		for _, s := range wholeObject {
			if strings.Contains(l, s) {
				t.Errorf("log line %d holds (part of) a whole object (%s): %s", i+1, s, l)
			}
		}
	}
	for what, texts := range map[string][]string{"admission warning": warnings, "Event note": notes} {
		for _, text := range texts {
			for secret, s := range secrets {
				if strings.Contains(text, s) {
					t.Errorf("an %s holds the %s: %s", what, secret, text)
				}
			}
			for _, s := range wholeObject {
				if strings.Contains(text, s) {
					t.Errorf("an %s holds (part of) a whole object (%s): %s", what, s, text)
				}
			}
		}
	}
	t.Logf("%d log lines (%d at debug level, %d trust check failures, %d malformed requests), %d admission warnings and %d Event notes checked for %d secret values and %d object markers",
		len(lines), debug, trustFailed, rejected, len(warnings), len(notes), len(secrets), len(wholeObject))
}

// eventNotes returns the note of every Event in ns (events.k8s.io/v1, which also lists the
// core/v1 Events' messages).
func eventNotes(t *testing.T, ns string) []string {
	t.Helper()
	list, err := suite.Admin.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list Events in %s: %v", ns, err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Note)
	}
	return out
}

// TestAllowedRoleAccounts: with --allowed-role-accounts, a role in another account is never
// injected (the pod is admitted with a warning and without AWS_ROLE_ARN), and the trust check
// in enforce mode denies a ServiceAccount naming one, on create and on update.
func TestAllowedRoleAccounts(t *testing.T) {
	const foreignAccount = "210987654321"
	foreign := "arn:aws:iam::" + foreignAccount + ":role/Foreign"
	iam := newIAM(t)
	w := startWebhook(t, []string{"--trust-check=enforce", "--allowed-role-accounts=" + testAccount}, iamEnv(t, iam, "accounts-drill-secret"))
	registerPodWebhook(t, "accounts", w)
	registerServiceAccountWebhook(t, "accounts-enforce", w)
	pods := drillNamespace(t, "accounts")            // pod webhook only
	enforce := drillNamespace(t, "accounts-enforce") // trust check only
	ctx := t.Context()
	cs, warns := warningClient(t)

	t.Run("a pod of a ServiceAccount naming another account's role gets no credentials", func(t *testing.T) {
		createServiceAccount(t, cs, pods, "foreign", foreign)
		warns.Take("")
		p, err := cs.CoreV1().Pods(pods).Create(ctx, simplePod("foreign", "foreign"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("pod refused: %v (the webhook never denies pods)", err)
		}
		for _, c := range p.Spec.Containers {
			if hasEnv(c, irsa.EnvRoleARN) || hasEnv(c, irsa.EnvWebIdentityTokenFile) {
				t.Errorf("container %s got AWS credentials for %s", c.Name, foreign)
			}
		}
		if hasTokenVolume(p) {
			t.Errorf("pod got the %s volume", irsa.VolumeName)
		}
		w := warns.Take("")
		if len(w) != 1 || !strings.Contains(w[0], foreignAccount) || !strings.Contains(w[0], "not allowed") {
			t.Errorf("warnings %q, want one naming account %s as not allowed", w, foreignAccount)
		}
	})
	t.Run("control: a role of an allowed account is injected", func(t *testing.T) {
		createServiceAccount(t, cs, pods, "allowed", testRoleARN)
		p, err := cs.CoreV1().Pods(pods).Create(ctx, simplePod("allowed", "allowed"), metav1.CreateOptions{})
		if err != nil || !hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) {
			t.Errorf("pod of an allowed role not mutated: %v", err)
		}
	})
	t.Run("enforce mode denies the ServiceAccount", func(t *testing.T) {
		calls := iam.TotalCalls()
		_, err := cs.CoreV1().ServiceAccounts(enforce).Create(ctx, serviceAccount("foreign", foreign), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), foreignAccount) {
			t.Fatalf("err = %v, want Forbidden naming account %s", err, foreignAccount)
		}
		if n := iam.TotalCalls() - calls; n != 0 {
			t.Errorf("%d IAM calls for a role the webhook may not use anyway", n)
		}
	})
	t.Run("enforce mode denies a change to another account's role", func(t *testing.T) {
		role := "arn:aws:iam::" + testAccount + ":role/AccountsTrusted"
		iam.PutRole(role, trustPolicy(t, role, enforce, "app"))
		createServiceAccount(t, cs, enforce, "app", role)
		sa, err := cs.CoreV1().ServiceAccounts(enforce).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sa.Annotations[roleAnnotation] = foreign
		if _, err := cs.CoreV1().ServiceAccounts(enforce).Update(ctx, sa, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("update to %s: err = %v, want Forbidden", foreign, err)
		}
	})
}

// TestExcludedNamespaces: namespaces in --excluded-namespaces are never mutated and their
// ServiceAccounts never trust-checked (no IAM call, no warning, no Event), even when the webhook
// configurations' selectors send them, also after the configurations are changed at runtime to
// send every namespace (kube-system included). Each refusal is shown to be the webhook's: the
// webhook was called for the object (its counters moved), and did nothing.
func TestExcludedNamespaces(t *testing.T) {
	const drill = "excluded"
	ctx := t.Context()
	excluded, err := suite.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "rel-excluded-ns-", Labels: map[string]string{drillLabel: drill},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	iam := newIAM(t)
	// Explicit flags: the test does not depend on the default list.
	w := startWebhook(t, []string{"--trust-check=warn", "--excluded-namespaces=kube-system," + excluded.Name}, iamEnv(t, iam, "excluded-drill-secret"))
	podCfg := registerPodWebhook(t, drill, w)
	saCfg := registerServiceAccountWebhook(t, drill, w)
	normal := drillNamespace(t, drill)
	for _, ns := range []string{normal, excluded.Name, metav1.NamespaceSystem} {
		createServiceAccount(t, suite.Admin, ns, "irsa-rel-app", testRoleARN)
	}
	t.Cleanup(func() {
		_ = suite.Admin.CoreV1().ServiceAccounts(metav1.NamespaceSystem).Delete(context.Background(), "irsa-rel-app", metav1.DeleteOptions{})
	})
	counters := func() (excludedPods, saRequests, trustChecks float64) {
		m := scrape(t, w.MetricsURL())
		return metricSum(m, "irsa_webhook_pod_mutations_total", `outcome="excluded_namespace"`),
			metricSum(m, "irsa_webhook_admission_requests_total", `webhook="serviceaccount"`),
			metricSum(m, "irsa_webhook_trust_checks_total")
	}
	// checkPod creates a pod in ns and wants it mutated or left alone; a pod left alone must
	// have reached the webhook (the excluded-namespace counter rose), so that the webhook,
	// not a selector, refused it.
	checkPod := func(t *testing.T, ns, name string, wantMutated bool) {
		t.Helper()
		before, _, _ := counters()
		p, err := suite.Admin.CoreV1().Pods(ns).Create(ctx, simplePod(name, "irsa-rel-app"), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod in %s: %v", ns, err)
		}
		if ns == metav1.NamespaceSystem {
			t.Cleanup(func() { _ = suite.Admin.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}) })
		}
		mutated := hasEnv(p.Spec.Containers[0], irsa.EnvRoleARN) || hasTokenVolume(p)
		after, _, _ := counters()
		switch {
		case mutated != wantMutated:
			t.Errorf("pod in %s: mutated %v, want %v", ns, mutated, wantMutated)
		case !wantMutated && after-before != 1:
			t.Errorf("pod in %s: the webhook's excluded_namespace count rose by %v, want 1 (the webhook must have been called and refused)", ns, after-before)
		}
	}
	// checkServiceAccount creates a ServiceAccount in ns naming a role that does not exist (a
	// new one each time: nothing cached): checked, it costs IAM calls and gets a warning, a
	// trust-check count and (later) an Event; excluded, the webhook is called (its request
	// count rises by one) and none of that happens.
	var roles atomic.Int32
	cs, warns := warningClient(t)
	type created struct{ ns, name string }
	var checkedSAs, excludedSAs []created
	checkServiceAccount := func(t *testing.T, ns, name string, wantChecked bool) {
		t.Helper()
		_, requests0, checks0 := counters()
		calls0 := iam.TotalCalls()
		warns.Take("")
		role := fmt.Sprintf("arn:aws:iam::%s:role/ExcludedDrillMissing%d", testAccount, roles.Add(1))
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, serviceAccount(name, role), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create serviceaccount in %s: %v", ns, err)
		}
		if ns == metav1.NamespaceSystem {
			t.Cleanup(func() {
				_ = suite.Admin.CoreV1().ServiceAccounts(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
			})
		}
		got := warns.Take("")
		_, requests1, checks1 := counters()
		calls := iam.TotalCalls() - calls0
		if requests1-requests0 != 1 {
			t.Errorf("serviceaccount in %s: the webhook answered %v requests, want 1 (it must have been called)", ns, requests1-requests0)
		}
		if wantChecked {
			checkedSAs = append(checkedSAs, created{ns, name})
			if len(got) != 1 || checks1-checks0 != 1 || calls == 0 {
				t.Errorf("control: serviceaccount in %s: warnings %q, %v trust checks, %d IAM calls; want 1 warning, 1 check, IAM asked", ns, got, checks1-checks0, calls)
			}
			return
		}
		excludedSAs = append(excludedSAs, created{ns, name})
		if len(got) != 0 || checks1 != checks0 || calls != 0 {
			t.Errorf("serviceaccount in excluded %s: warnings %q, %v trust checks, %d IAM calls; want none", ns, got, checks1-checks0, calls)
		}
	}
	t.Run("control: a namespace not excluded is mutated and checked", func(t *testing.T) {
		checkPod(t, normal, "control", true)
		checkServiceAccount(t, normal, "control", true)
	})
	t.Run("an excluded namespace the selectors send is left alone", func(t *testing.T) {
		checkPod(t, excluded.Name, "sent", false)
		checkServiceAccount(t, excluded.Name, "sent", false)
	})
	t.Run("configurations changed at runtime to send every namespace", func(t *testing.T) {
		pc, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, podCfg.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pc.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{} // every namespace
		if _, err := suite.Admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, pc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		sc, err := suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, saCfg.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sc.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{}
		if _, err := suite.Admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, sc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Wait until the API server uses both new configurations: it sends kube-system.
		if err := poll(ctx, 30*time.Second, func() (bool, string) {
			pods0, requests0, _ := counters()
			dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
			_, perr := suite.Admin.CoreV1().Pods(metav1.NamespaceSystem).Create(ctx, simplePod("probe", "irsa-rel-app"), dry)
			_, serr := suite.Admin.CoreV1().ServiceAccounts(metav1.NamespaceSystem).Create(ctx, serviceAccount("irsa-rel-probe", testRoleARN), dry)
			pods1, requests1, _ := counters()
			return perr == nil && serr == nil && pods1 > pods0 && requests1 > requests0,
				fmt.Sprintf("kube-system not sent to both webhooks yet (pod: %v, serviceaccount: %v)", perr, serr)
		}); err != nil {
			t.Fatal(err)
		}
		checkPod(t, metav1.NamespaceSystem, "irsa-rel-sent", false)
		checkServiceAccount(t, metav1.NamespaceSystem, "irsa-rel-sent", false)
		checkPod(t, excluded.Name, "sent-after-update", false)
		checkServiceAccount(t, excluded.Name, "sent-after-update", false)
		checkPod(t, normal, "control-after-update", true)
		checkServiceAccount(t, normal, "control-after-update", true)
	})
	// Events are written once the ServiceAccount is stored: wait for the controls' Events,
	// written after the excluded ServiceAccounts were created, then want none of those.
	hasEvent := func(c created) bool {
		list, err := suite.Admin.EventsV1().Events(c.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list Events in %s: %v", c.ns, err)
		}
		return slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool {
			return e.Regarding.Kind == "ServiceAccount" && e.Regarding.Name == c.name
		})
	}
	for _, c := range checkedSAs {
		if err := poll(ctx, 30*time.Second, func() (bool, string) { return hasEvent(c), "no Event" }); err != nil {
			t.Errorf("control: serviceaccount %s/%s: %v", c.ns, c.name, err)
		}
	}
	for _, c := range excludedSAs {
		if hasEvent(c) {
			t.Errorf("serviceaccount %s/%s in an excluded namespace got an Event", c.ns, c.name)
		}
	}
	if code, _, err := webhookproc.Get(ctx, w.HealthURL("/readyz")); err != nil || code != http.StatusOK {
		t.Errorf("webhook not ready after the drill: %d %v", code, err)
	}
}
