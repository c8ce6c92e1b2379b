#!/usr/bin/env bash
# Runs shellcheck on every shell script of the test tooling: the *.sh files under test/ that git
# knows (tracked, or new and not ignored) and .ci/run. Installs shellcheck with apt-get when it
# is missing (needs root, as on the project's machines and CI). Exits non-zero on any finding.
#
# Usage: test/tools/shellcheck.sh [--help]
set -euo pipefail

log() { printf '[shellcheck] %s\n' "$*" >&2; }

case "${1:-}" in
  -h | --help)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *)
    log "unknown argument: $1 (see --help)"
    exit 2
    ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if ! command -v shellcheck >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1 || [[ $(id -u) != 0 ]]; then
    log "shellcheck is not installed and cannot be installed here (needs apt-get as root): install it, then re-run"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "shellcheck not found: running apt-get install -y shellcheck"
  if ! apt-get install -y shellcheck >/dev/null; then
    log "install failed: running apt-get update, then apt-get install -y shellcheck again"
    apt-get update >/dev/null
    apt-get install -y shellcheck >/dev/null
  fi
  log "installed $(shellcheck --version | sed -n 's/^version: //p' | head -n 1)"
fi

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'test/*.sh' .ci/run | sort -u)
existing=()
for f in "${files[@]}"; do
  [[ -f $f ]] && existing+=("$f")
done
if ((${#existing[@]} == 0)); then
  log "no shell scripts found under test/ or .ci/run"
  exit 1
fi
log "checking ${#existing[@]} scripts: ${existing[*]}"
# -x follows `source` into the sourced files (their paths are given with source= directives).
shellcheck -x "${existing[@]}"
log "no findings"
