package chart_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
)

// webhookBinary builds cmd/irsa-webhook once per test binary, into dir (removed by TestMain).
type webhookBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func (b *webhookBinary) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			b.err = err
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "irsa-chart-test-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "irsa-webhook")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/irsa-webhook")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build cmd/irsa-webhook: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func (b *webhookBinary) cleanup() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// serveFlag is a flag as `irsa-webhook serve --help` lists it.
type serveFlag struct {
	kind string // pflag's type word: string, int, duration, strings, float, func; bool when none is printed
	def  string // the printed default, unquoted; empty when none is printed
}

var (
	// pflag's listing: "  -v, --v int   usage (default 0)" or "      --enable-http2   usage".
	helpFlagLine = regexp.MustCompile(`^\s+(?:-[a-zA-Z], )?--([a-z0-9_-]+)(?: (\w+))?\s{2,}(.*)$`)
	helpDefault  = regexp.MustCompile(`\(default (.*)\)$`)
)

// serveFlags runs `irsa-webhook serve --help` and parses pflag's listing of the flags.
func serveFlags(t testing.TB) map[string]serveFlag {
	t.Helper()
	out, err := exec.Command(tools.webhook.get(t), "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("irsa-webhook serve --help: %v\n%s", err, out)
	}
	flags := map[string]serveFlag{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := helpFlagLine.FindStringSubmatch(sc.Text())
		if m == nil || m[1] == "help" {
			continue
		}
		f := serveFlag{kind: m[2]}
		if f.kind == "" {
			f.kind = "bool"
		}
		if d := helpDefault.FindStringSubmatch(m[3]); d != nil {
			f.def = d[1]
			if u, err := strconv.Unquote(d[1]); err == nil {
				f.def = u
			}
		}
		flags[m[1]] = f
	}
	if len(flags) < 20 {
		t.Fatalf("parsed only %d flags from serve --help:\n%s", len(flags), out)
	}
	return flags
}

// notFromValues are the serve flags the chart deliberately does not set.
func notFromValues() map[string]string {
	return map[string]string{
		"kubeconfig": "the webhook runs in the cluster it serves; use extraArgs and extraVolumes for anything else",
		"v":          "klog-style verbosity for command lines written for the reference webhook; the chart sets --log-level",
	}
}

// TestServeFlagsReachable checks that every flag of `irsa-webhook serve` can be set from the
// values, and that the chart passes no flag the binary does not know (a pod that would
// exit 2 at start).
func TestServeFlagsReachable(t *testing.T) {
	binary := serveFlags(t)
	chart := map[string]string{} // flag -> a value set that renders it
	for _, vs := range valueSets() {
		r := render(t, vs.values)
		for name := range flagValues(t, stripExtraArgs(args(t, r), vs.values)) {
			if _, ok := chart[name]; !ok {
				chart[name] = vs.name
			}
		}
	}
	var unknown, unreachable []string
	for name, set := range chart {
		if _, ok := binary[name]; !ok {
			unknown = append(unknown, fmt.Sprintf("--%s (value set %q)", name, set))
		}
	}
	for name := range binary {
		if _, ok := chart[name]; !ok {
			if _, skip := notFromValues()[name]; !skip {
				unreachable = append(unreachable, "--"+name)
			}
		}
	}
	slices.Sort(unknown)
	slices.Sort(unreachable)
	if len(unknown) > 0 {
		t.Errorf("the chart passes flags `irsa-webhook serve` does not define (the pod would exit 2):\n  %s", strings.Join(unknown, "\n  "))
	}
	if len(unreachable) > 0 {
		t.Errorf("flags of `irsa-webhook serve` no value sets (add a value, or list the flag in notFromValues with the reason):\n  %s", strings.Join(unreachable, "\n  "))
	}
}

// stripExtraArgs drops the arguments that came from the extraArgs value.
func stripExtraArgs(args []string, v values) []string {
	extra, _ := v["extraArgs"].([]string)
	return args[:len(args)-len(extra)]
}

// chartDefault is what the chart passes for a flag with default values, and why it is not the
// binary's default.
type chartDefault struct{ value, why string }

// chartSpecific are the flags whose chart default intentionally differs from the binary's,
// because the chart knows the names of the objects it creates.
func chartSpecific() map[string]chartDefault {
	return map[string]chartDefault{
		"excluded-namespaces":              {namespace, "the release namespace, as the binary's default $POD_NAMESPACE is in the chart's pod; kube-system is covered"},
		"cert-mode":                        {"self-managed", "the chart manages certificates (self-managed); the bare binary reads files"},
		"cert-secret-name":                 {fullname + "-tls", "the Secret the chart creates"},
		"cert-namespace":                   {namespace, "the release namespace"},
		"cert-service-name":                {fullname, "the Service the chart creates"},
		"mutating-webhook-configuration":   {fullname, "the configuration the chart creates"},
		"validating-webhook-configuration": {fullname, "the configuration the chart creates"},
		"config-map-namespace":             {namespace, "the release namespace"},
	}
}

// TestChartDefaultsMatchBinary checks that with default values the chart passes each flag the
// binary's own default (so that values.yaml documents the binary's behaviour), apart from the
// deployment-specific flags in chartSpecific, which must have their chartSpecific value.
// TestArgs builds on this: its cases start from the default arguments checked here.
func TestChartDefaultsMatchBinary(t *testing.T) {
	binary := serveFlags(t)
	// A pflag Func prints no default.
	unprinted := map[string]string{"trust-check": string(serviceaccount.Warn)}
	rendered := flagValues(t, args(t, render(t, values{})))
	for name, c := range chartSpecific() {
		if got, ok := rendered[name]; !ok || got != c.value {
			t.Errorf("--%s: chart default %q (passed: %v), want %q: %s", name, got, ok, c.value, c.why)
		}
	}
	for name, got := range rendered {
		if _, ok := chartSpecific()[name]; ok {
			continue
		}
		f, ok := binary[name]
		if !ok {
			continue // reported by TestServeFlagsReachable
		}
		want := f.def
		if d, ok := unprinted[name]; ok {
			want = d
		}
		if !sameValue(f.kind, got, want) {
			t.Errorf("--%s: chart default %q, binary default %q", name, got, want)
		}
	}
}

// sameValue compares a flag value from the chart with the binary's default, by flag kind.
func sameValue(kind, chart, binary string) bool {
	switch kind {
	case "duration":
		c, err1 := time.ParseDuration(chart)
		b, err2 := time.ParseDuration(or(binary, "0s"))
		return err1 == nil && err2 == nil && c == b
	case "bool":
		return chart == or(binary, "false")
	case "int":
		return chart == or(binary, "0")
	}
	return chart == binary
}
