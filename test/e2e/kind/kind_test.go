package kind_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/irsa-webhook/irsa-webhook/test/e2e/scripttest"
)

// These tests run run.sh with fake docker, kind, kubectl, helm and go first on PATH: the real
// end-to-end run needs a Docker engine, which these machines do not have, but the script's own
// logic (the engine check, the install paths, the retries, the assertions, the teardown) does
// not. FAKE_* variables steer the fakes; FAKE_STATE is a directory for what they remember.

const fakeDocker = `case "$1" in
info) if [ -n "${FAKE_NO_ENGINE:-}" ]; then echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1; fi ;;
version) echo "Docker engine 28.2.2" ;;
esac
exit 0`

const fakeKind = `case "$1" in
version) echo "kind v0.33.0 fake" ;;
get) [ -n "${FAKE_CLUSTER_EXISTS:-}" ] && echo irsa-webhook-e2e ;;
esac
exit 0`

const fakeHelm = `case "$1" in
get) cat <<'EOF'
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: irsa-webhook
  namespace: irsa-webhook
EOF
;;
esac
exit 0`

// fakeKubectl: `get -f` lists the webhook Deployment; the first pod created is not mutated
// when FAKE_FIRST_POD_UNMUTATED is set; `apply -f` keeps a copy of what it applied.
const fakeKubectl = `[ "$1" = -n ] && shift 2
case "$1" in
apply)
  shift
  while [ $# -gt 0 ]; do
    if [ "$1" = -f ]; then n=$(ls "$FAKE_STATE" | grep -c '^applied-'); cp "$2" "$FAKE_STATE/applied-$n.yaml"; shift; fi
    shift
  done ;;
create) n=$(cat "$FAKE_STATE/creates" 2>/dev/null || echo 0); echo $((n + 1)) >"$FAKE_STATE/creates" ;;
get)
  case "$*" in
  *"get -f "*) printf 'irsa-webhook irsa-webhook\n' ;;
  *AWS_ROLE_ARN*)
    if [ -n "${FAKE_FIRST_POD_UNMUTATED:-}" ] && [ "$(cat "$FAKE_STATE/creates")" = 1 ]; then exit 0; fi
    printf 'arn:aws:iam::123456789012:role/S3WriterRole' ;;
  *status.phase*) printf Succeeded ;;
  esac ;;
logs) cat "$FAKE_POD_LOG" ;;
esac
exit 0`

// fakeGo lists kind versions as the module proxy does and "builds" kind by copying the fake.
const fakeGo = `case "$1" in
list) echo "sigs.k8s.io/kind v0.7.0 v0.32.0 v0.33.0" ;;
install) mkdir -p "$GOBIN" && cp "$(dirname "$0")/kind" "$GOBIN/kind" ;;
*) exit 97 ;;
esac`

const forbidden = "echo 'fake: must not be called' >&2; exit 97"

const goodLog = `AWS_ROLE_ARN=arn:aws:iam::123456789012:role/S3WriterRole
AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token
TOKEN_CLAIMS={"aud":["sts.amazonaws.com"],"exp":1900000000,"iat":1800000000,"iss":"https://kubernetes.default.svc.cluster.local","kubernetes.io":{"namespace":"production"},"nbf":1800000000,"sub":"system:serviceaccount:production:s3-writer"}
`

// manifest stands in for deploy/manifests/irsa-webhook.yaml.
const manifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: irsa-webhook
  namespace: irsa-webhook
spec:
  template:
    spec:
      containers:
        - name: webhook
          image: ghcr.io/irsa-webhook/irsa-webhook:v0.1.0
          imagePullPolicy: Always
        - name: sidecar
          image: "registry.example/other:1"
`

// runScript runs run.sh with fakes first on PATH, with the pod log of a passing run unless env
// names another; nothing of the machine's kind, kubectl or cluster may be picked up.
func runScript(t *testing.T, fakes map[string]string, env []string, args ...string) scripttest.Result {
	t.Helper()
	dir := t.TempDir()
	podLog := filepath.Join(dir, "pod.log")
	if err := os.WriteFile(podLog, []byte(goodLog), 0o644); err != nil {
		t.Fatal(err)
	}
	drop := func(name string) bool {
		return name == "KUBECONFIG" || name == "DOCKER_HOST" || name == "KIND_VERSION"
	}
	return scripttest.Run(t, scripttest.Options{Fakes: fakes, Drop: drop, Env: append([]string{
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "IRSA_CONTROL_PLANE_DIR=" + filepath.Join(dir, "none"),
		"FAKE_POD_LOG=" + podLog,
	}, env...)}, args...)
}

func TestNoDockerEngineStopsAtOnce(t *testing.T) {
	fakes := map[string]string{"docker": fakeDocker, "kind": forbidden, "kubectl": forbidden, "helm": forbidden, "go": forbidden}
	start := time.Now()
	r := runScript(t, fakes, []string{"FAKE_NO_ENGINE=1"})
	if r.Code != 1 {
		t.Errorf("exit code %d, want 1", r.Code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: it should stop at once", d)
	}
	for _, w := range []string{"no Docker engine reachable ('docker info' failed)", "Nothing was created", "docker info: Cannot connect to the Docker daemon"} {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
		}
	}
	if !slices.Equal(r.Calls, []string{"docker info"}) {
		t.Errorf("calls %q, want only docker info", r.Calls)
	}
}

func TestRunWithFakes(t *testing.T) {
	chart := t.TempDir()
	if err := os.WriteFile(filepath.Join(chart, "Chart.yaml"), []byte("apiVersion: v2\nname: irsa-webhook\nversion: 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifestFile := filepath.Join(t.TempDir(), "irsa-webhook.yaml")
	if err := os.WriteFile(manifestFile, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		args        []string
		env         []string
		podLog      string
		noHelm      bool
		buildKind   bool // no --kind: kind is built with go into the cache
		wantCode    int
		wantInOrder []string
		notCalled   []string
		wantStdout  []string
		wantStderr  []string
		wantApplied []string // substrings of the manifest kubectl applied
	}{
		{
			name: "helm: pass, cluster deleted",
			args: []string{"--chart", chart},
			env:  []string{"FAKE_FIRST_POD_UNMUTATED=1"},
			wantInOrder: []string{
				"docker info",
				"kind create cluster --name irsa-webhook-e2e",
				"docker build --build-arg VERSION=",
				"kind load docker-image irsa-webhook:e2e-",
				"helm upgrade --install irsa-webhook " + chart + " --namespace irsa-webhook --create-namespace --set image.repository=irsa-webhook,image.tag=e2e-",
				"helm get manifest irsa-webhook --namespace irsa-webhook",
				"kubectl get -f ",
				"kubectl -n irsa-webhook rollout status deployment/irsa-webhook",
				"kubectl apply -f ",
				"kubectl create -f ",
				"kubectl -n production delete pod irsa-e2e-", // the unmutated first pod
				"kubectl create -f ",
				"kubectl -n production logs irsa-e2e-",
				// teardown
				"kubectl -n production delete pod irsa-e2e-",
				"docker image rm irsa-webhook:e2e-",
				"kind delete cluster --name irsa-webhook-e2e",
			},
			notCalled:  []string{"go "},
			wantStdout: []string{"ok: AWS_ROLE_ARN = arn:aws:iam::123456789012:role/S3WriterRole", "ok: token sub = system:serviceaccount:production:s3-writer", "ok: token aud contains sts.amazonaws.com", "PASS:"},
		},
		{
			name:        "manifest without helm: the image is pointed at the loaded one",
			args:        []string{"--manifest", manifestFile, "--no-helm", "--keep"},
			noHelm:      true,
			wantInOrder: []string{"kind create cluster", "kubectl apply -f ", "kubectl -n irsa-webhook rollout status deployment/irsa-webhook", "kubectl create -f "},
			notCalled:   []string{"helm upgrade", "helm get", "kind delete cluster"},
			wantStdout:  []string{"PASS:", "cluster irsa-webhook-e2e kept"},
			wantApplied: []string{"          image: irsa-webhook:e2e-", "imagePullPolicy: IfNotPresent", `image: "registry.example/other:1"`},
		},
		{
			name:        "kind built from the module proxy into the cache",
			args:        []string{"--chart", chart},
			buildKind:   true,
			wantInOrder: []string{"docker info", "go list -m -versions sigs.k8s.io/kind", "go install sigs.k8s.io/kind@v0.33.0", "kind version", "kind create cluster"},
			wantStdout:  []string{"cache/irsa-webhook/kind-v0.33.0", "PASS:"},
		},
		{
			name:       "kind version missing on the module proxy",
			args:       []string{"--chart", chart},
			env:        []string{"KIND_VERSION=v0.99.0"},
			buildKind:  true,
			wantCode:   1,
			wantStderr: []string{"the Go module proxy has no sigs.k8s.io/kind v0.99.0 (it has: v0.7.0 v0.32.0 v0.33.0)"},
			notCalled:  []string{"go install", "kind create"},
		},
		{
			name:       "existing cluster without --reuse: stops, deletes nothing",
			args:       []string{"--chart", chart},
			env:        []string{"FAKE_CLUSTER_EXISTS=1"},
			wantCode:   1,
			wantStderr: []string{"a kind cluster named irsa-webhook-e2e already exists"},
			notCalled:  []string{"kind create", "kind delete", "docker build"},
		},
		{
			name:        "existing cluster with --reuse: kept",
			args:        []string{"--chart", chart, "--reuse"},
			env:         []string{"FAKE_CLUSTER_EXISTS=1"},
			wantInOrder: []string{"kind export kubeconfig --name irsa-webhook-e2e", "helm upgrade --install"},
			notCalled:   []string{"kind create", "kind delete"},
			wantStdout:  []string{"PASS:", "cluster irsa-webhook-e2e kept"},
		},
		{
			name:        "wrong token: every failure reported, diagnostics, cluster deleted",
			args:        []string{"--chart", chart},
			podLog:      "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/Other\nAWS_WEB_IDENTITY_TOKEN_FILE=/token\nTOKEN_CLAIMS={\"aud\":[\"https://kubernetes.default.svc\"],\"iss\":\"https://kubernetes.default.svc.cluster.local\",\"sub\":\"system:serviceaccount:production:default\"}\n",
			wantCode:    1,
			wantStderr:  []string{`FAIL: AWS_ROLE_ARN: got "arn:aws:iam::123456789012:role/Other"`, `FAIL: AWS_WEB_IDENTITY_TOKEN_FILE: got "/token"`, "FAIL: token sub", "FAIL: token aud", "---- diagnostics ----"},
			wantInOrder: []string{"kubectl get pods -A", "kind delete cluster"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fakes := map[string]string{"docker": fakeDocker, "kind": fakeKind, "kubectl": fakeKubectl, "helm": fakeHelm, "go": forbidden}
			args := append([]string{"--kind", "kind", "--timeout", "20"}, tc.args...)
			if tc.buildKind {
				fakes["go"] = fakeGo
				args = append([]string{"--timeout", "20"}, tc.args...)
			}
			if tc.noHelm {
				delete(fakes, "helm")
			}
			env := tc.env
			if tc.podLog != "" {
				f := filepath.Join(t.TempDir(), "pod.log")
				if err := os.WriteFile(f, []byte(tc.podLog), 0o644); err != nil {
					t.Fatal(err)
				}
				env = append(env, "FAKE_POD_LOG="+f)
			}
			r := runScript(t, fakes, env, args...)
			if r.Code != tc.wantCode {
				t.Errorf("exit code %d, want %d", r.Code, tc.wantCode)
			}
			r.Check(t, scripttest.Want{InOrder: tc.wantInOrder, NotCalled: tc.notCalled, Stdout: tc.wantStdout, Stderr: tc.wantStderr})
			if len(tc.wantApplied) > 0 {
				applied, err := os.ReadFile(filepath.Join(r.State, "applied-0.yaml"))
				if err != nil {
					t.Fatalf("nothing applied: %v", err)
				}
				for _, w := range tc.wantApplied {
					if !strings.Contains(string(applied), w) {
						t.Errorf("applied manifest lacks %q:\n%s", w, applied)
					}
				}
			}
			if t.Failed() {
				t.Logf("calls:\n%s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Calls, "\n"), r.Stdout, r.Stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := runScript(t, map[string]string{"docker": forbidden}, nil, "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Usage: test/e2e/kind/run.sh") || len(r.Calls) > 0 {
		t.Errorf("exit %d, calls %q, stdout:\n%s", r.Code, r.Calls, r.Stdout)
	}
}
