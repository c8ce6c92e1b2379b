# shellcheck shell=bash
# Helpers shared by the end-to-end scripts under test/e2e/ (sourced, never run):
#   - output: step headers, notes and the commands run, written to fd 3 (the script's stdout,
#     also from inside command substitutions, so captured output is never polluted);
#   - run / capture / show_cmd: print a command in a form that can be pasted into a shell and,
#     unless DRY_RUN=1, run it;
#   - defer / run_deferred: a cleanup stack. A script pushes the command that undoes a thing
#     right after it created that thing, and the EXIT trap pops them in reverse order, so only
#     what this run created is ever removed;
#   - pod helpers: the shell snippet a test pod runs to print its token's claims, and parsers
#     for the KEY=VALUE lines such a pod prints.
# Written by hand: these are a few lines of shell with no library to take them from.

exec 3>&1

E2E_NAME="${E2E_NAME:-e2e}"
DRY_RUN="${DRY_RUN:-0}"
DEFERRED=()

step() { printf '\n==> %s\n' "$*" >&3; }
note() { printf '    %s\n' "$*" >&3; }
warn() { printf '%s: warning: %s\n' "$E2E_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$E2E_NAME" "$*" >&2
  exit 1
}
# usage_die: a bad command line (exit 2).
usage_die() {
  printf '%s: error: %s (see --help)\n' "$E2E_NAME" "$*" >&2
  exit 2
}

# flag_value FLAG [VALUE...]: VALUE, or a usage error when it is missing. Use as X="$(flag_value "$@")".
flag_value() {
  [[ $# -ge 2 && $2 != --* ]] || usage_die "$1 needs a value"
  printf '%s' "$2"
}

# split_flags ARGS...: ARGS with every --flag=value split into --flag value, in the array
# FLAGS (a function cannot set its caller's "$@"). Use as: split_flags "$@"; set -- ${FLAGS[@]+"${FLAGS[@]}"}
split_flags() {
  FLAGS=()
  local a
  for a in "$@"; do
    if [[ $a == --*=* ]]; then FLAGS+=("${a%%=*}" "${a#*=}"); else FLAGS+=("$a"); fi
  done
}

# finish RC PASS-MESSAGE: the run's verdict, then exit RC (for a script's EXIT trap).
finish() {
  if (($1 == 0)); then step "PASS: $2"; else step "FAIL (exit $1): see the messages above"; fi
  exit "$1"
}

# trap_exit HANDLER: HANDLER runs when the script exits; Ctrl-C and SIGTERM exit with the
# shell's codes for them (130, 143), through HANDLER.
trap_exit() {
  # shellcheck disable=SC2064 # the handler's name is expanded now, on purpose
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# quote_cmd ARGS...: the arguments as one shell-ready line (single quotes only where needed).
quote_cmd() {
  local out="" a safe='^[A-Za-z0-9_./:=@,+%-]+$' q="'\\''"
  for a in "$@"; do
    if [[ $a =~ $safe ]]; then
      out+="$a "
    else
      out+="'${a//\'/$q}' "
    fi
  done
  printf '%s' "${out% }"
}

show_cmd() { printf '+ %s\n' "$(quote_cmd "$@")" >&3; }

# show_file FILE: print a file the next command reads, indented, so a dry run shows it too.
show_file() {
  printf '    --- %s\n' "$(basename "$1")" >&3
  sed 's/^/    | /' "$1" >&3
}

# run CMD...: print CMD, then run it unless this is a dry run.
run() {
  show_cmd "$@"
  [[ $DRY_RUN == 1 ]] && return 0
  "$@"
}

# capture PLACEHOLDER CMD...: print CMD, then run it and print its stdout; in a dry run print
# PLACEHOLDER instead. Use as VAR=$(capture ...).
capture() {
  local placeholder="$1"
  shift
  show_cmd "$@"
  if [[ $DRY_RUN == 1 ]]; then
    printf '%s\n' "$placeholder"
    return 0
  fi
  "$@"
}

# defer CMD...: push the command that undoes something this run just created. Call it from the
# main shell, never inside $(...), or the entry is lost with the subshell.
defer() { DEFERRED+=("$(quote_cmd "$@")"); }

# run_deferred: run the cleanup stack in reverse order; a failing entry is reported and the
# others still run. Returns non-zero when an entry failed.
run_deferred() {
  local i failed=0
  if ((${#DEFERRED[@]} == 0)); then
    note "nothing to clean up"
    return 0
  fi
  for ((i = ${#DEFERRED[@]} - 1; i >= 0; i--)); do
    printf '+ %s\n' "${DEFERRED[i]}" >&3
    [[ $DRY_RUN == 1 ]] && continue
    if ! eval "${DEFERRED[i]}"; then
      warn "cleanup failed, remove it by hand: ${DEFERRED[i]}"
      failed=1
    fi
  done
  DEFERRED=()
  return "$failed"
}

# pod_claims_snippet: POSIX sh (busybox and Amazon Linux alike) that prints the variables the
# webhook injects and the decoded claims of the token file, one KEY=VALUE line each.
pod_claims_snippet() {
  cat <<'SH'
echo "AWS_ROLE_ARN=${AWS_ROLE_ARN:-}"
echo "AWS_WEB_IDENTITY_TOKEN_FILE=${AWS_WEB_IDENTITY_TOKEN_FILE:-}"
if [ -r "${AWS_WEB_IDENTITY_TOKEN_FILE:-/nonexistent}" ]; then
  # A JWT payload is unpadded base64url: map it to base64 and pad it before decoding.
  payload=$(cut -d. -f2 "$AWS_WEB_IDENTITY_TOKEN_FILE" | tr '_-' '/+')
  while [ $(( ${#payload} % 4 )) -ne 0 ]; do payload="${payload}="; done
  echo "TOKEN_CLAIMS=$(printf '%s' "$payload" | base64 -d | tr -d '\n')"
else
  echo "TOKEN_CLAIMS="
fi
SH
}

# log_value KEY LOG: the value of the first KEY=VALUE line of LOG.
log_value() { sed -n "s/^$1=//p" <<<"$2" | head -n 1; }

# claim NAME JSON: a string claim of a compact JSON object (as Kubernetes issues tokens).
claim() { sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\\1/p" <<<"$2" | head -n 1; }

# aud_has AUDIENCE JSON: whether the aud claim (a string or a list of strings) holds AUDIENCE.
aud_has() {
  local aud
  aud=$(sed -nE 's/.*"aud":(\[[^]]*\]|"[^"]*").*/\1/p' <<<"$2")
  [[ $aud == *"\"$1\""* ]]
}

# Assertions collect every failure; check_failures reports them all at once.
FAILURES=()
expect_eq() { # NAME GOT WANT
  if [[ $2 == "$3" ]]; then
    note "ok: $1 = $2"
  else
    FAILURES+=("$1: got \"$2\", want \"$3\"")
  fi
}
expect_match() { # NAME GOT REGEX
  if [[ $2 =~ $3 ]]; then
    note "ok: $1 = $2"
  else
    FAILURES+=("$1: got \"$2\", want a match of $3")
  fi
}
expect_true() { # NAME DESCRIPTION CMD...
  local name="$1" what="$2"
  shift 2
  if "$@"; then
    note "ok: $name $what"
  else
    FAILURES+=("$name: not $what")
  fi
}
check_failures() {
  local f
  ((${#FAILURES[@]} == 0)) && return 0
  for f in "${FAILURES[@]}"; do
    printf '%s: FAIL: %s\n' "$E2E_NAME" "$f" >&2
  done
  return 1
}
