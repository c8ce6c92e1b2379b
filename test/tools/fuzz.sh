#!/usr/bin/env bash
# Runs every fuzz target for FUZZTIME each (default 30s). `make test` runs it briefly so
# regressions show in CI; `make fuzz FUZZTIME=10m` searches for real.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}" # as the Makefile pins it
fuzztime="${FUZZTIME:-30s}"
targets=(
  "./webhook/pod FuzzHandle"
  "./webhook/pod FuzzMutate"
  "./webhook/trustpolicy FuzzParse"
  "./webhook/trustpolicy FuzzEvaluate"
  "./webhook/mapping FuzzParse"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "fuzz: $pkg $name for $fuzztime"
  go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime"
done
