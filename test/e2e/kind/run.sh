#!/usr/bin/env bash
# End-to-end test of the webhook on a throwaway kind cluster: build the image, load it into
# the cluster, install the webhook (Helm chart, or the rendered manifest without helm), create
# the walkthrough's namespace and ServiceAccount, and check that a pod running as that
# ServiceAccount gets the role ARN, the token file and a token with the right sub and aud.
# Needs a Docker engine; without one it stops at once (exit 1). Run with --help for the flags.
set -euo pipefail

E2E_NAME="e2e-kind"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../../.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib.sh
source "$HERE/../lib.sh"

KIND_VERSION="${KIND_VERSION:-v0.33.0}" # its default node image is kindest/node:v1.37.0
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook"

usage() {
  cat <<EOF
Usage: test/e2e/kind/run.sh [flags]        (make e2e-kind)

Creates a kind cluster, builds the irsa-webhook image from the repo's Dockerfile and loads it,
installs the webhook (helm upgrade --install deploy/charts/irsa-webhook; without helm:
kubectl apply -f deploy/manifests/irsa-webhook.yaml), waits for its rollout, applies
deploy/examples/namespace.yaml and serviceaccount.yaml, runs a pod as production/s3-writer and
asserts AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the token's sub and aud. Deletes the
cluster at the end unless --keep (or --reuse).

Needs: a Docker engine (checked first: without one this exits 1 at once), go (kind
$KIND_VERSION is built from the Go module proxy into \$XDG_CACHE_HOME/irsa-webhook/kind-$KIND_VERSION,
~/.cache by default), kubectl (the one \`make control-plane\` builds, else PATH), helm (optional).

Flags:
  --name NAME           kind cluster name (default irsa-webhook-e2e)
  --node-image IMAGE    kind node image (default: kind $KIND_VERSION's, Kubernetes 1.37)
  --keep                keep the cluster (and what was installed) for inspection
  --reuse               use an existing cluster of that name; it is kept at the end
  --kind PATH           kind binary to use instead of building $KIND_VERSION (a bare name: from PATH)
  --helm PATH           helm binary (default: helm on PATH; none: the rendered manifest is used)
  --no-helm             install the rendered manifest with kubectl even when helm is found
  --chart DIR           chart to install (default deploy/charts/irsa-webhook)
  --manifest FILE       manifest to apply without helm (default deploy/manifests/irsa-webhook.yaml)
  --image-repository R  image repository to build and load (default irsa-webhook)
  --webhook-namespace N namespace of the Helm release (default irsa-webhook, as the manifest's)
  --helm-set KEY=VALUE  an extra chart value (repeatable), e.g. --helm-set trustCheck.mode=off
  --test-image IMAGE    image of the test pod (default busybox:1.37)
  --timeout SECONDS     per wait: rollout, pod mutation, pod completion (default 180)
  -h, --help            this help
EOF
}

CLUSTER="irsa-webhook-e2e"
NODE_IMAGE=""
KEEP=0
REUSE=0
KIND=""
HELM=""
NO_HELM=0
CHART="$REPO_ROOT/deploy/charts/irsa-webhook"
MANIFEST="$REPO_ROOT/deploy/manifests/irsa-webhook.yaml"
IMAGE_REPOSITORY="irsa-webhook"
WEBHOOK_NAMESPACE="irsa-webhook"
HELM_SETS=()
TEST_IMAGE="busybox:1.37"
TIMEOUT=180

split_flags "$@"
set -- ${FLAGS[@]+"${FLAGS[@]}"}
while (($#)); do
  case "$1" in
    --name) CLUSTER="$(flag_value "$@")"; shift 2 ;;
    --node-image) NODE_IMAGE="$(flag_value "$@")"; shift 2 ;;
    --kind) KIND="$(flag_value "$@")"; shift 2 ;;
    --helm) HELM="$(flag_value "$@")"; shift 2 ;;
    --image-repository) IMAGE_REPOSITORY="$(flag_value "$@")"; shift 2 ;;
    --webhook-namespace) WEBHOOK_NAMESPACE="$(flag_value "$@")"; shift 2 ;;
    --test-image) TEST_IMAGE="$(flag_value "$@")"; shift 2 ;;
    --timeout) TIMEOUT="$(flag_value "$@")"; shift 2 ;;
    --chart) CHART="$(flag_value "$@")"; shift 2 ;;
    --manifest) MANIFEST="$(flag_value "$@")"; shift 2 ;;
    --helm-set) HELM_SETS+=(--set "$(flag_value "$@")"); shift 2 ;;
    --no-helm) NO_HELM=1; shift ;;
    --keep) KEEP=1; shift ;;
    --reuse) REUSE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_die "unknown argument: $1" ;;
  esac
done
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_die "--timeout \"$TIMEOUT\" is not a number of seconds"
[[ $NO_HELM == 1 && -n $HELM ]] && usage_die "--helm and --no-helm exclude each other"

# ---- the Docker engine first: nothing else is worth doing without it ---------------------
step "Check: a Docker engine is reachable"
if ! command -v docker >/dev/null 2>&1; then
  die "no docker command found: the kind end-to-end test needs Docker (client and engine) to run the cluster's nodes. Nothing was created."
fi
if ! docker_err="$(docker info 2>&1 >/dev/null)"; then
  printf '%s\n' "$docker_err" | grep -v '^[[:space:]]*$' | tail -n 3 | sed 's/^/    docker info: /' >&2
  die "no Docker engine reachable ('docker info' failed): the kind end-to-end test needs one to run the cluster's nodes. Start Docker (or point DOCKER_HOST at an engine) and re-run. Nothing was created."
fi
note "ok: $(docker version --format 'Docker engine {{.Server.Version}}' 2>/dev/null || echo 'Docker engine reachable')"

RUN_ID="$(date -u +%Y%m%d%H%M%S)-$$"
IMAGE_TAG="e2e-$RUN_ID"
IMAGE="$IMAGE_REPOSITORY:$IMAGE_TAG"
POD="irsa-e2e-$RUN_ID"
NAMESPACE="production"
SERVICE_ACCOUNT="s3-writer"
WANT_ROLE_ARN="arn:aws:iam::123456789012:role/S3WriterRole"
WANT_TOKEN_FILE="/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
AUDIENCE="sts.amazonaws.com"
SUBJECT="system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/irsa-e2e-kind.XXXXXX")"
export KUBECONFIG="$WORK/kubeconfig" # never the user's own kubeconfig
CLUSTER_UP=0

diagnostics() {
  echo "---- diagnostics ----" >&2
  kubectl get pods -A -o wide >&2 || true
  kubectl get mutatingwebhookconfigurations >&2 || true
  kubectl -n "$NAMESPACE" describe pod "$POD" >&2 || true
  if [[ -n ${WEBHOOK_DEPLOYMENTS:-} ]]; then
    while read -r ns name; do
      [[ -n $name ]] && kubectl -n "$ns" logs "deployment/$name" --all-containers --tail=50 >&2
    done <<<"$WEBHOOK_DEPLOYMENTS" || true
  fi
  echo "---- end of diagnostics ----" >&2
}

on_exit() {
  local rc=$?
  trap - EXIT
  ((rc != 0 && CLUSTER_UP == 1)) && diagnostics
  step "Teardown"
  if ! run_deferred && ((rc == 0)); then rc=1; fi
  if ((CLUSTER_UP == 1)) && ((KEEP == 1 || REUSE == 1)); then
    note "cluster $CLUSTER kept: use it with  $(quote_cmd "$KIND" export kubeconfig --name "$CLUSTER")"
    note "delete it with  $(quote_cmd "$KIND" delete cluster --name "$CLUSTER")"
  fi
  rm -rf "$WORK"
  finish "$rc" "a pod running as $SUBJECT got $WANT_ROLE_ARN and a token for $AUDIENCE"
}
trap_exit on_exit

# ---- tools -------------------------------------------------------------------------------
step "Tools: kind $KIND_VERSION, kubectl, helm"
if [[ -z $KIND ]]; then
  KIND="$CACHE_ROOT/kind-$KIND_VERSION/kind"
  if [[ ! -x $KIND ]]; then
    command -v go >/dev/null 2>&1 || die "go not found: it is needed to build kind $KIND_VERSION"
    note "building kind $KIND_VERSION from the Go module proxy (first run only)"
    show_cmd go list -m -versions sigs.k8s.io/kind
    versions="$(cd "$WORK" && GOFLAGS=-mod=mod go list -m -versions sigs.k8s.io/kind)" ||
      die "could not list sigs.k8s.io/kind versions on the Go module proxy"
    [[ " $versions " == *" $KIND_VERSION "* ]] ||
      die "the Go module proxy has no sigs.k8s.io/kind $KIND_VERSION (it has: ${versions#sigs.k8s.io/kind })"
    (cd "$WORK" && run env GOBIN="$(dirname "$KIND")" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION") ||
      die "go install sigs.k8s.io/kind@$KIND_VERSION failed"
  fi
fi
if [[ $KIND != */* ]]; then # a bare name: the one on PATH
  KIND="$(command -v "$KIND")" || die "--kind: no $KIND on PATH"
fi
[[ -x $KIND ]] || die "kind binary $KIND is not executable"
note "kind: $("$KIND" version)"

# The kubectl `make control-plane` builds matches the cluster's version; any other works too.
KUBECTL_DIR="${IRSA_CONTROL_PLANE_DIR:-$CACHE_ROOT/k8s-v1.37.2-etcd-v3.6.16}"
if [[ -x $KUBECTL_DIR/kubectl ]]; then
  PATH="$KUBECTL_DIR:$PATH"
fi
command -v kubectl >/dev/null 2>&1 || die "kubectl not found: run 'make control-plane' (builds it) or install kubectl"
note "kubectl: $(command -v kubectl)"

if [[ $NO_HELM == 0 && -z $HELM ]] && command -v helm >/dev/null 2>&1; then
  HELM="$(command -v helm)"
fi
if [[ -n $HELM && ! -f $CHART/Chart.yaml ]]; then
  warn "helm found but no chart at $CHART: using the rendered manifest"
  HELM=""
fi
if [[ -n $HELM ]]; then
  note "helm: $HELM (installs the chart)"
else
  [[ -f $MANIFEST ]] || die "neither helm (with the chart) nor the manifest $MANIFEST is available to install the webhook"
  note "no helm: installs $MANIFEST with kubectl"
fi

# ---- cluster -----------------------------------------------------------------------------
step "Cluster: kind cluster $CLUSTER"
existing="$("$KIND" get clusters 2>/dev/null || true)"
if grep -Fxq "$CLUSTER" <<<"$existing"; then
  ((REUSE == 1)) || die "a kind cluster named $CLUSTER already exists: delete it ($KIND delete cluster --name $CLUSTER), pick another --name, or pass --reuse"
  note "reusing the existing cluster (--reuse): it is kept at the end"
  run "$KIND" export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  create=("$KIND" create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait "${TIMEOUT}s")
  [[ -n $NODE_IMAGE ]] && create+=(--image "$NODE_IMAGE")
  REUSE=0
  run "${create[@]}"
  ((KEEP == 1)) || defer "$KIND" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
fi
CLUSTER_UP=1
run kubectl version

# ---- image -------------------------------------------------------------------------------
step "Image: build $IMAGE from the Dockerfile and load it into the cluster"
version="$(git -C "$REPO_ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)"
commit="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
run docker build --build-arg "VERSION=$version" --build-arg "COMMIT=$commit" -t "$IMAGE" "$REPO_ROOT"
# Only the tag is removed at the end; the layers stay in Docker's build cache for the next run.
defer docker image rm "$IMAGE"
run "$KIND" load docker-image "$IMAGE" --name "$CLUSTER"

# ---- webhook -----------------------------------------------------------------------------
step "Webhook: install and wait for the rollout"
if [[ -n $HELM ]]; then
  run "$HELM" upgrade --install irsa-webhook "$CHART" --namespace "$WEBHOOK_NAMESPACE" --create-namespace \
    --set "image.repository=$IMAGE_REPOSITORY,image.tag=$IMAGE_TAG,image.pullPolicy=Never" \
    ${HELM_SETS[@]+"${HELM_SETS[@]}"} --wait --timeout "${TIMEOUT}s"
  run "$HELM" get manifest irsa-webhook --namespace "$WEBHOOK_NAMESPACE" >"$WORK/installed.yaml"
else
  # Point the manifest's irsa-webhook image at the loaded one; an `Always` pull policy would make
  # the kubelet look for it in a registry, so it becomes IfNotPresent (the image is on the node).
  sed -E -e "s#^([[:space:]]*-?[[:space:]]*image:[[:space:]]*)[\"']?[^\"'[:space:]]*irsa-webhook[^\"'[:space:]]*[\"']?#\\1$IMAGE#" \
    -e 's#^([[:space:]]*imagePullPolicy:[[:space:]]*)Always#\1IfNotPresent#' "$MANIFEST" >"$WORK/installed.yaml"
  grep -Fq "$IMAGE" "$WORK/installed.yaml" || die "$MANIFEST has no irsa-webhook image line to point at $IMAGE"
  run kubectl apply -f "$WORK/installed.yaml"
fi
# A chart may leave metadata.namespace out of its templates: the release's namespace applies.
get_installed=(kubectl get -f "$WORK/installed.yaml")
[[ -n $HELM ]] && get_installed+=(--namespace "$WEBHOOK_NAMESPACE")
WEBHOOK_DEPLOYMENTS="$("${get_installed[@]}" -o \
  'jsonpath={range .items[?(@.kind=="Deployment")]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}')"
[[ -n $WEBHOOK_DEPLOYMENTS ]] || die "the installed manifest has no Deployment"
while read -r ns name; do
  [[ -n $name ]] || continue
  run kubectl -n "${ns:-$WEBHOOK_NAMESPACE}" rollout status "deployment/$name" --timeout "${TIMEOUT}s"
done <<<"$WEBHOOK_DEPLOYMENTS"
run kubectl get mutatingwebhookconfigurations

# ---- walkthrough objects -----------------------------------------------------------------
step "Walkthrough step 4: namespace $NAMESPACE and ServiceAccount $SERVICE_ACCOUNT (deploy/examples)"
run kubectl apply -f "$REPO_ROOT/deploy/examples/namespace.yaml" -f "$REPO_ROOT/deploy/examples/serviceaccount.yaml"

step "Walkthrough step 5: a pod ($TEST_IMAGE) running as $NAMESPACE/$SERVICE_ACCOUNT"
{
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $POD
  namespace: $NAMESPACE
spec:
  serviceAccountName: $SERVICE_ACCOUNT
  restartPolicy: Never
  containers:
    - name: check
      image: $TEST_IMAGE
      command: ["/bin/sh", "-c"]
      args:
        - |
EOF
  pod_claims_snippet | sed 's/^/          /'
} >"$WORK/pod.yaml"
show_file "$WORK/pod.yaml"

# The Deployment can be Available a moment before the API server reaches the webhook (and a
# webhook with failurePolicy Ignore then admits pods unchanged), so a pod created without the
# injection is deleted and created again until the deadline.
show_cmd kubectl create -f "$WORK/pod.yaml"
deadline=$((SECONDS + TIMEOUT))
mutated=""
while :; do
  if kubectl create -f "$WORK/pod.yaml" >/dev/null 2>"$WORK/create.err"; then
    mutated="$(kubectl -n "$NAMESPACE" get pod "$POD" -o 'jsonpath={.spec.containers[0].env[?(@.name=="AWS_ROLE_ARN")].value}')"
    [[ -n $mutated ]] && break
    kubectl -n "$NAMESPACE" delete pod "$POD" --wait=true >/dev/null
  fi
  if ((SECONDS >= deadline)); then
    cat "$WORK/create.err" >&2
    die "pods in $NAMESPACE were not mutated within ${TIMEOUT}s: is the webhook registered and reachable?"
  fi
  sleep 2
done
defer kubectl -n "$NAMESPACE" delete pod "$POD" --ignore-not-found --wait=false
note "pod $POD admitted with AWS_ROLE_ARN=$mutated"

show_cmd kubectl -n "$NAMESPACE" get pod "$POD" -o 'jsonpath={.status.phase}'
note "(polled every 2s until Succeeded or Failed, at most ${TIMEOUT}s)"
deadline=$((SECONDS + TIMEOUT))
while :; do
  phase="$(kubectl -n "$NAMESPACE" get pod "$POD" -o 'jsonpath={.status.phase}')" || phase=""
  [[ $phase == Succeeded || $phase == Failed ]] && break
  ((SECONDS < deadline)) || die "pod $POD did not finish within ${TIMEOUT}s (phase \"$phase\")"
  sleep 2
done
LOGS="$(kubectl -n "$NAMESPACE" logs "$POD")"
while IFS= read -r line; do printf '    pod> %s\n' "$line"; done <<<"$LOGS" >&3

# ---- assertions --------------------------------------------------------------------------
step "Walkthrough step 6: the pod got the role, the token file and a token STS would accept"
CLAIMS="$(log_value TOKEN_CLAIMS "$LOGS")"
expect_eq "pod phase" "$phase" "Succeeded"
expect_eq AWS_ROLE_ARN "$(log_value AWS_ROLE_ARN "$LOGS")" "$WANT_ROLE_ARN"
expect_eq AWS_WEB_IDENTITY_TOKEN_FILE "$(log_value AWS_WEB_IDENTITY_TOKEN_FILE "$LOGS")" "$WANT_TOKEN_FILE"
expect_eq "token sub" "$(claim sub "$CLAIMS")" "$SUBJECT"
expect_true "token aud" "contains $AUDIENCE" aud_has "$AUDIENCE" "$CLAIMS"
expect_match "token iss" "$(claim iss "$CLAIMS")" '^https://'
check_failures || exit 1
