package chart_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
)

func TestMain(m *testing.M) {
	code := m.Run()
	tools.webhook.cleanup()
	os.Exit(code)
}

// kubectl runs kubectl against cp with stdin, returning stdout and stderr.
func kubectl(t *testing.T, cp *controlplane.ControlPlane, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cp.Kubectl(args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), errOut.String(), nil
}

func mustKubectl(t *testing.T, cp *controlplane.ControlPlane, stdin []byte, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := kubectl(t, cp, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr
}

// withoutCRDKinds drops the objects whose kinds come from CRDs this API server lacks
// (cert-manager, prometheus-operator) and returns the rest as one YAML stream.
func withoutCRDKinds(r rendered) []byte {
	var b bytes.Buffer
	for _, o := range r.Objects {
		if strings.HasPrefix(o.APIVersion, "cert-manager.io/") || strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/") {
			continue
		}
		b.WriteString("---\n")
		b.Write(o.Doc)
		b.WriteString("\n")
	}
	return b.Bytes()
}

// TestAPIServer applies what the chart renders to a real kube-apiserver.
func TestAPIServer(t *testing.T) {
	cp, err := controlplane.Start(t.Context(), controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Error(err)
		}
	})

	t.Run("server dry-run", func(t *testing.T) {
		for i, vs := range valueSets() {
			t.Run(vs.name, func(t *testing.T) {
				// Every value set in a namespace of its own, created for real: a dry-run
				// creation of the namespace would not let the objects in it through.
				// Each namespace enforces the restricted Pod Security Standard, so that the API
				// server warns about a pod template that would violate it.
				ns := fmt.Sprintf("dry-run-%d", i)
				mustKubectl(t, cp, nil, "create", "namespace", ns)
				mustKubectl(t, cp, nil, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
				out, err := runHelm(t, "template", release, chartDir(t), "--namespace", ns, "-f", valuesFile(t, vs.values))
				if err != nil {
					t.Fatal(err)
				}
				// Cluster-scoped names would collide across value sets only on a real apply.
				_, stderr := mustKubectl(t, cp, withoutCRDKinds(parseRendered(t, out)), "apply", "--dry-run=server", "-f", "-")
				if strings.Contains(stderr, "Warning:") {
					t.Errorf("the API server warns:\n%s", stderr)
				}
			})
		}
	})

	t.Run("helm install and upgrade", func(t *testing.T) {
		kubeconfig := "--kubeconfig=" + cp.KubeconfigPath()
		out, err := runHelm(t, "install", release, chartDir(t), "--namespace", namespace, "--create-namespace", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		checkNotes(t, out, []string{
			"annotate serviceaccount", "eks.amazonaws.com/role-arn=arn:aws:iam::", "env | grep AWS_", "Warning:",
			"kubectl -n " + namespace + " rollout status deployment/" + fullname, "failurePolicy Ignore",
		}, []string{"label namespace", "rejected", "IAM unreachable"})

		ca := writeAsWebhook(t, cp, namespace, fullname)
		if _, err := runHelm(t, "upgrade", release, chartDir(t), "--namespace", namespace, kubeconfig, "-f", valuesFile(t, values{
			"webhook": values{"mutating": values{"failurePolicy": "Fail"}},
		})); err != nil {
			t.Fatal(err)
		}
		checkKept(t, cp, namespace, fullname, ca)
	})

	// Trust check only (EKS, next to AWS's managed webhook): installed for real, the API
	// server holds the ServiceAccount check's configuration and no pod webhook of this release.
	t.Run("helm install, trust check only", func(t *testing.T) {
		const rel, ns = "trustonly", "trust-only"
		out, err := runHelm(t, "install", rel, chartDir(t), "--namespace", ns, "--create-namespace", "--kubeconfig="+cp.KubeconfigPath(), "-f", valuesFile(t, trustOnly))
		if err != nil {
			t.Fatal(err)
		}
		checkNotes(t, out, []string{"Pod mutation is off", "Warning:"}, []string{"env | grep AWS_"})
		name := rel + "-irsa-webhook"
		if _, _, err := kubectl(t, cp, nil, "get", "mutatingwebhookconfiguration", name); err == nil {
			t.Errorf("MutatingWebhookConfiguration %s exists", name)
		}
		mustKubectl(t, cp, nil, "get", "validatingwebhookconfiguration", name)
		if args, _ := mustKubectl(t, cp, nil, "-n", ns, "get", "deployment", name, "-o", "jsonpath={.spec.template.spec.containers[0].args}"); !strings.Contains(args, "--mutate-pods=false") {
			t.Errorf("Deployment args %s lack --mutate-pods=false", args)
		}
	})

	// NOTES.txt, which helm template leaves out, for other values.
	t.Run("NOTES", func(t *testing.T) {
		tests := []struct {
			name         string
			values       values
			want, absent []string
		}{
			{name: "opt-in", values: values{"webhook": values{"namespaceOptIn": values{"enabled": true}}}, want: []string{"kubectl label namespace <namespace> irsa-webhook.io/inject=enabled"}},
			{name: "enforce", values: values{"trustCheck": values{"mode": "enforce"}}, want: []string{"the annotation is rejected", "get events"}, absent: []string{"Warning:", "IAM unreachable"}},
			{name: "enforce, fail closed", values: values{"trustCheck": values{"mode": "enforce", "failClosed": true}}, want: []string{"the annotation is rejected", "IAM unreachable"}},
			{name: "trust check off", values: values{"trustCheck": values{"mode": "off"}}, absent: []string{"Warning:", "trust check", "get events"}},
			{name: "failurePolicy Fail", values: values{"webhook": values{"mutating": values{"failurePolicy": "Fail"}}},
				want: []string{"kube-system included"}, absent: []string{"failurePolicy Ignore"}},
			{name: "failurePolicy Fail, kube-system excluded", values: values{"webhook": values{"mutating": values{"failurePolicy": "Fail"}, "excludedNamespaces": []string{"kube-system"}}},
				absent: []string{"failurePolicy Ignore", "kube-system included"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := runHelm(t, "install", "notes", chartDir(t), "--namespace", "notes", "--dry-run=client",
					"--kubeconfig="+cp.KubeconfigPath(), "-f", valuesFile(t, tt.values))
				if err != nil {
					t.Fatal(err)
				}
				checkNotes(t, strings.ReplaceAll(out, "notes-irsa-webhook", fullname), tt.want, tt.absent)
			})
		}
	})

	t.Run("kubectl apply of deploy/manifests", func(t *testing.T) {
		manifests, err := os.ReadFile(filepath.Join(mustRoot(t), "deploy", "manifests", "irsa-webhook.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The namespace enforces the restricted Pod Security Standard; the API server warns
		// about a Deployment whose pods would violate it.
		_, stderr := mustKubectl(t, cp, manifests, "apply", "-f", "-")
		if strings.Contains(stderr, "Warning:") {
			t.Errorf("the API server warns:\n%s", stderr)
		}

		const (
			ns   = "irsa-webhook"
			name = "irsa-webhook"
			sa   = "system:serviceaccount:" + ns + ":" + name
		)
		t.Run("RBAC", func(t *testing.T) {
			tests := []struct {
				args []string
				want string
			}{
				{[]string{"list", "serviceaccounts", "--all-namespaces"}, "yes"},
				{[]string{"watch", "serviceaccounts", "--all-namespaces"}, "yes"},
				{[]string{"update", "serviceaccounts", "-n", "default"}, "no"},
				{[]string{"create", "events.events.k8s.io", "-n", "production"}, "yes"},
				{[]string{"create", "events", "-n", "production"}, "yes"},
				{[]string{"get", "/.well-known/openid-configuration"}, "yes"},
				{[]string{"get", "/openid/v1/jwks"}, "yes"},
				{[]string{"get", "/metrics"}, "no"},
				{[]string{"get", "secrets/" + name + "-tls", "-n", ns}, "yes"},
				{[]string{"update", "secrets/" + name + "-tls", "-n", ns}, "yes"},
				{[]string{"get", "secrets/other", "-n", ns}, "no"},
				{[]string{"list", "secrets", "-n", ns}, "no"},
				{[]string{"create", "secrets", "-n", ns}, "no"},
				{[]string{"delete", "secrets/" + name + "-tls", "-n", ns}, "no"},
				{[]string{"patch", "mutatingwebhookconfigurations/" + name}, "yes"},
				{[]string{"patch", "validatingwebhookconfigurations/" + name}, "yes"},
				{[]string{"patch", "mutatingwebhookconfigurations/other"}, "no"},
				{[]string{"create", "mutatingwebhookconfigurations"}, "no"},
				{[]string{"get", "pods", "-n", "production"}, "no"},
			}
			for _, tt := range tests {
				args := append([]string{"auth", "can-i", "--as=" + sa}, tt.args...)
				out, _, _ := kubectl(t, cp, nil, args...) // "no" exits 1
				if got := strings.TrimSpace(out); got != tt.want {
					t.Errorf("can %s %s? %q, want %q", sa, strings.Join(tt.args, " "), got, tt.want)
				}
			}
		})

		t.Run("reapplying keeps what the webhook wrote", func(t *testing.T) {
			ca := writeAsWebhook(t, cp, ns, name)
			// An upgrade with other values, applied the way kubectl users upgrade.
			out, err := runHelm(t, "template", "irsa-webhook", chartDir(t), "--namespace", ns, "-f", valuesFile(t, values{
				"webhook": values{"mutating": values{"failurePolicy": "Fail"}},
			}))
			if err != nil {
				t.Fatal(err)
			}
			mustKubectl(t, cp, []byte(out), "apply", "-f", "-")
			checkKept(t, cp, ns, name, ca)
		})
	})
}

// writeAsWebhook does what the webhook does in self-managed mode: fill the Secret and the
// caBundles. It returns the caBundle written, base64-encoded.
func writeAsWebhook(t *testing.T, cp *controlplane.ControlPlane, ns, name string) string {
	t.Helper()
	ca := base64.StdEncoding.EncodeToString([]byte(testCA))
	mustKubectl(t, cp, nil, "-n", ns, "patch", "secret", name+"-tls", "--type=merge",
		"-p", `{"data":{"tls.crt":"Y2VydA==","tls.key":"a2V5","ca.crt":"`+ca+`"}}`)
	for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
		mustKubectl(t, cp, nil, "patch", kind, name, "--type=json",
			"-p", `[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"`+ca+`"}]`)
	}
	return ca
}

// checkKept checks that an upgrade to failurePolicy Fail happened and kept what writeAsWebhook
// wrote.
func checkKept(t *testing.T, cp *controlplane.ControlPlane, ns, name, ca string) {
	t.Helper()
	data, _ := mustKubectl(t, cp, nil, "-n", ns, "get", "secret", name+"-tls", "-o", "jsonpath={.data.tls\\.crt}")
	if data != "Y2VydA==" {
		t.Errorf("Secret data tls.crt after the upgrade = %q, want the webhook's", data)
	}
	for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
		got, _ := mustKubectl(t, cp, nil, "get", kind, name, "-o", "jsonpath={.webhooks[0].clientConfig.caBundle}")
		if got != ca {
			t.Errorf("%s caBundle after the upgrade = %q, want the webhook's", kind, got)
		}
	}
	policy, _ := mustKubectl(t, cp, nil, "get", "mutatingwebhookconfiguration", name, "-o", "jsonpath={.webhooks[0].failurePolicy}")
	if policy != "Fail" {
		t.Errorf("failurePolicy after the upgrade = %q: the upgrade did not apply", policy)
	}
}

// checkNotes checks the NOTES section of helm install's output.
func checkNotes(t *testing.T, out string, want, absent []string) {
	t.Helper()
	i := strings.Index(out, "NOTES:")
	if i < 0 {
		t.Fatalf("no NOTES in\n%s", out)
	}
	notes := out[i:]
	for _, w := range want {
		if !strings.Contains(notes, w) {
			t.Errorf("NOTES lack %q:\n%s", w, notes)
		}
	}
	for _, a := range absent {
		if strings.Contains(notes, a) {
			t.Errorf("NOTES contain %q:\n%s", a, notes)
		}
	}
}
