#!/usr/bin/env bash
# Builds the vegeta load generator from the Go module proxy into a cache directory keyed by
# version (reused when present) and prints that directory.
set -euo pipefail
VEGETA_VERSION="${VEGETA_VERSION:-12.13.0}"
DEST="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/irsa-webhook/vegeta-v${VEGETA_VERSION}}"
if [[ -x "$DEST/vegeta" ]]; then
  echo "$DEST"
  exit 0
fi
echo "[vegeta] building v${VEGETA_VERSION} from the Go module proxy" >&2
mkdir -p "$DEST"
GOBIN="$DEST" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "github.com/tsenart/vegeta/v12@v${VEGETA_VERSION}"
echo "$DEST"
