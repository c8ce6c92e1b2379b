#!/usr/bin/env bash
# Builds the real control-plane binaries the tests run against (etcd, kube-apiserver, kubectl)
# from the Go module proxy, into a cache directory keyed by version. Nothing is rebuilt when the
# binaries are already there. Prints progress; exits non-zero on any failure (tests never skip).
#
# Usage: build-control-plane.sh [DEST_DIR]
#   DEST_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook/k8s-v${K8S_VERSION}-etcd-v${ETCD_VERSION}
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook"
DEST="${1:-$CACHE_ROOT/k8s-v${K8S_VERSION}-etcd-v${ETCD_VERSION}}"

log() { printf '[control-plane] %s\n' "$*" >&2; }

if [[ -x "$DEST/etcd" && -x "$DEST/kube-apiserver" && -x "$DEST/kubectl" ]]; then
  echo "$DEST"
  exit 0
fi
mkdir -p "$DEST"
work="$(mktemp -d "${TMPDIR:-/tmp}/irsa-cp-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

export GOFLAGS="${GOFLAGS:-} -mod=mod"
export CGO_ENABLED=0

if [[ ! -x "$DEST/etcd" ]]; then
  log "building etcd v${ETCD_VERSION} (cold: 1-3 minutes)"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init irsa-webhook.local/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null
  go build -trimpath -ldflags='-s -w' -o "$DEST/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$DEST/etcd.tmp" "$DEST/etcd"
  log "etcd ready"
fi

if [[ ! -x "$DEST/kube-apiserver" || ! -x "$DEST/kubectl" ]]; then
  log "building kube-apiserver and kubectl v${K8S_VERSION} (cold: 6-9 minutes on 2 cores)"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod download "k8s.io/kubernetes@v${K8S_VERSION}"
  gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v${K8S_VERSION}.mod"
  # k8s.io/kubernetes pins every staging module at v0.0.0 and replaces it with a local path;
  # a consumer must replace each with its published v0.X.Y tag instead.
  staging_minor="0.${K8S_VERSION#1.}"
  {
    echo "module irsa-webhook.local/k8s-build"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes v${K8S_VERSION}"
    echo
    echo "replace ("
    grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="v${staging_minor}" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving modules"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  major="${K8S_VERSION%%.*}"; rest="${K8S_VERSION#*.}"; minor="${rest%%.*}"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  done
  for cmd in kube-apiserver kubectl; do
    if [[ ! -x "$DEST/$cmd" ]]; then
      log "compiling $cmd"
      go build -trimpath -ldflags="$ldflags" -o "$DEST/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
      mv "$DEST/$cmd.tmp" "$DEST/$cmd"
      log "$cmd ready"
    fi
  done
fi
echo "$DEST"
