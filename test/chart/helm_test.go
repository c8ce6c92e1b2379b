// Package chart_test checks the Helm chart deploy/charts/irsa-webhook: it renders the chart with
// several value sets through the real helm binary and asserts on the decoded Kubernetes
// objects, checks that the schema rejects bad values, that every value is documented, that
// every flag of `irsa-webhook serve` is reachable, that deploy/manifests is up to date, and
// that the API server accepts what the chart renders.
//
// helm is $IRSA_HELM, else the one test/tools/build-helm.sh builds into the cache (minutes,
// once). If neither works the tests fail; they never skip.
package chart_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// envHelm names the environment variable pointing at a helm binary to use instead of building.
const envHelm = "IRSA_HELM"

// The release every test renders. Neither name is the chart's, so that resource names built
// from them ("<release>-irsa-webhook") and namespaces cannot be confused with constants.
const (
	release   = "idp"
	namespace = "aws-identity"
	fullname  = "idp-irsa-webhook"
)

// helmTool finds or builds helm once per test binary.
type helmTool struct {
	once sync.Once
	path string
	err  error
}

func (h *helmTool) get(t testing.TB) string {
	t.Helper()
	h.once.Do(func() { h.path, h.err = findHelm() })
	if h.err != nil {
		t.Fatalf("helm is needed: %v", h.err)
	}
	return h.path
}

// tools holds what the tests find once (helm, the repository root, the built webhook binary).
var tools struct {
	helm    helmTool
	webhook webhookBinary
}

func findHelm() (string, error) {
	if p := os.Getenv(envHelm); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("$%s=%q is not an executable: %w", envHelm, p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "test", "tools", "build-helm.sh")
	var stdout bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr // progress of a cold build (minutes)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build helm with %s (or set $%s): %w", script, envHelm, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := filepath.Join(lines[len(lines)-1], "helm")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("build helm with %s: %w", script, err)
	}
	return p, nil
}

// repoRoot is the directory holding go.mod, found upwards from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func mustRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string {
	return filepath.Join(mustRoot(t), "deploy", "charts", "irsa-webhook")
}

// runHelm runs helm with args and returns its stdout; the error carries stderr.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tools.helm.get(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Keep helm away from the user's repositories, plugins and registry credentials.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// values are chart values, written to a file for `helm -f`.
type values map[string]any

func valuesFile(t testing.TB, v values) string {
	t.Helper()
	data, err := json.Marshal(v) // JSON is YAML
	if err != nil {
		t.Fatalf("encode values: %v", err)
	}
	// Not in t.TempDir: helm splits -f on commas, which test names may contain.
	f, err := os.CreateTemp("", "irsa-chart-values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(f.Name()) })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// templateArgs are the `helm template` arguments for v.
func templateArgs(t testing.TB, v values, extra ...string) []string {
	args := []string{"template", release, chartDir(t), "--namespace", namespace, "-f", valuesFile(t, v)}
	return append(args, extra...)
}

// renderErr renders the chart with v and returns the error helm reports, if any.
func renderErr(t testing.TB, v values) (rendered, error) {
	t.Helper()
	out, err := runHelm(t, templateArgs(t, v)...)
	if err != nil {
		return rendered{}, err
	}
	return parseRendered(t, out), nil
}

// render renders the chart with v; failing to render fails the test.
func render(t testing.TB, v values) rendered {
	t.Helper()
	r, err := renderErr(t, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// object is one rendered document.
type object struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Doc        []byte // YAML
}

// rendered is the output of `helm template`, split into objects.
type rendered struct {
	Text    string
	Objects []object
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func parseRendered(t testing.TB, text string) rendered {
	t.Helper()
	r := rendered{Text: text}
	for _, doc := range docSeparator.Split(text, -1) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("rendered document is not YAML: %v\n%s", err, doc)
		}
		if meta.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				t.Fatalf("rendered document has no kind:\n%s", doc)
			}
			continue
		}
		r.Objects = append(r.Objects, object{
			APIVersion: meta.APIVersion, Kind: meta.Kind,
			Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace,
			Doc: []byte(doc),
		})
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// find returns the object of kind and name.
func (r rendered) find(kind, name string) (object, bool) {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o, true
		}
	}
	return object{}, false
}

// get decodes the object of kind and name into into, strictly: a field the Go type does not
// know (a typo in a template) fails the test.
func (r rendered) get(t testing.TB, kind, name string, into any) {
	t.Helper()
	o, ok := r.find(kind, name)
	if !ok {
		t.Fatalf("no %s %q rendered; have %v", kind, name, r.names())
	}
	if err := yaml.UnmarshalStrict(o.Doc, into); err != nil {
		t.Fatalf("decode %s %q: %v\n%s", kind, name, err, o.Doc)
	}
}

func (r rendered) has(kind, name string) bool {
	_, ok := r.find(kind, name)
	return ok
}

// names lists the objects as Kind/name, in order.
func (r rendered) names() []string {
	var out []string
	for _, o := range r.Objects {
		out = append(out, o.Kind+"/"+o.Name)
	}
	return out
}
