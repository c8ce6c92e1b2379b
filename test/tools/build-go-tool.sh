#!/usr/bin/env bash
# Builds a Go command-line tool from the Go module proxy into a cache directory keyed by its
# version, so `make lint` and `make verify` need nothing installed by hand. Nothing is
# rebuilt when the binary is already there. Progress goes to stderr; the binary's path is
# printed on stdout. (Helm has its own script: its build stamps version variables.)
#
# Usage: build-go-tool.sh NAME PACKAGE VERSION
#   e.g. build-go-tool.sh golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint v2.15.0
set -euo pipefail

[[ $# -eq 3 ]] || { echo "usage: $0 NAME PACKAGE VERSION" >&2; exit 2; }
name="$1" pkg="$2" version="$3"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook"
DEST="$CACHE_ROOT/${name}-${version}"

if [[ -x "$DEST/$name" ]]; then
  echo "$DEST/$name"
  exit 0
fi
printf '[%s] building %s@%s from the Go module proxy (cold: a few minutes)\n' "$name" "$pkg" "$version" >&2
mkdir -p "$DEST"
work="$(mktemp -d "${TMPDIR:-/tmp}/irsa-tool-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Outside this repository, so its go.mod plays no part: `go install pkg@version` resolves
# the tool's own module graph.
cd "$work"
GOFLAGS='' CGO_ENABLED=0 GOBIN="$work/bin" go install -trimpath -ldflags='-s -w' "${pkg}@${version}"
# Copy next to the destination, then rename: a concurrent run never sees half a binary.
cp "$work/bin/$name" "$DEST/$name.tmp.$$"
mv "$DEST/$name.tmp.$$" "$DEST/$name"
echo "$DEST/$name"
