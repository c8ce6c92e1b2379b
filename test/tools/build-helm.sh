#!/usr/bin/env bash
# Builds the Helm CLI the chart tests and `make generate` use, from the Go module proxy, into a
# cache directory keyed by version. Nothing is rebuilt when the binary is already there.
# Progress goes to stderr; the directory holding `helm` is printed on stdout.
#
# Usage: build-helm.sh [DEST_DIR]
#   DEST_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook/helm-v${HELM_VERSION}
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-3.22.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook"
DEST="${1:-$CACHE_ROOT/helm-v${HELM_VERSION}}"

log() { printf '[helm] %s\n' "$*" >&2; }

if [[ -x "$DEST/helm" ]]; then
  echo "$DEST"
  exit 0
fi
mkdir -p "$DEST"
# Build into a private directory and rename the result into place, so that a concurrent run
# never sees a half-written binary.
work="$(mktemp -d "${TMPDIR:-/tmp}/irsa-helm-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building helm v${HELM_VERSION} from the Go module proxy (cold: 2-5 minutes)"
# Run outside this repository so its go.mod plays no part; `go install pkg@version` resolves
# helm's own module graph.
cd "$work"
export GOFLAGS='' CGO_ENABLED=0
# Helm's release builds stamp the Kubernetes version that `helm template` and `helm lint`
# assume (derived from the client-go it is built with); without it they assume v1.20 and
# refuse charts that need newer clusters. Do what helm's Makefile does.
gomod="$(go mod download -json "helm.sh/helm/v3@v${HELM_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
clientgo="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")" # v0.MINOR.PATCH
[[ "$clientgo" =~ ^v0\.([0-9]+)\. ]] || { log "cannot read the client-go version from $gomod"; exit 1; }
k8s_minor="${BASH_REMATCH[1]}"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done
GOBIN="$work/bin" go install -trimpath -ldflags="$ldflags" "helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}"
# Copy next to the destination first: a rename within one filesystem is atomic.
cp "$work/bin/helm" "$DEST/helm.tmp.$$"
mv "$DEST/helm.tmp.$$" "$DEST/helm"
log "helm ready: $("$DEST/helm" version --short 2>/dev/null || echo "v${HELM_VERSION}")"
echo "$DEST"
