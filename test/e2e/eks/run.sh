#!/usr/bin/env bash
# End-to-end test of the IRSA walkthrough (steps 1-7) against a real AWS account and EKS
# cluster, with the AWS CLI and kubectl. Everything it creates is recorded and removed on exit,
# in reverse order, also when it fails; nothing it did not create is ever deleted.
# Run with --help for the flags; --dry-run prints every command without calling anything.
set -euo pipefail

E2E_NAME="e2e-eks"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../../.." && pwd)"
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib.sh
source "$HERE/../lib.sh"

usage() {
  cat <<'EOF'
Usage: test/e2e/eks/run.sh [flags]        (make e2e-eks E2E_EKS_FLAGS='...')

Runs the IRSA walkthrough end to end against a real EKS cluster and AWS account:
  1. the cluster's OIDC issuer has an IAM OIDC provider (created with --create-oidc-provider)
  2. an IAM policy allowing writes to the bucket
  3. an IAM role whose trust policy admits only system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT
  4. the namespace and the ServiceAccount annotated with the role ARN
  5. a pod (amazon/aws-cli) running as that ServiceAccount
  6. checks: the injected AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE, the token's iss/sub/aud,
     sts get-caller-identity is the assumed role, the S3 write succeeds
  7. reports node group role policies beyond the three the walkthrough says nodes need
Then removes, in reverse order, everything it created (and only that).

Needs: aws (v2, IAM admin), kubectl configured for the cluster; eksctl or openssl only with
--create-oidc-provider. If an irsa-webhook binary is found (--irsa-webhook, PATH, or bin/ after
`make build`), it writes the trust policy (`irsa-webhook trust policy`) and checks the role
(`irsa-webhook trust check`); otherwise the walkthrough's policy document is used.

Flags (environment variable in brackets):
  --cluster NAME            EKS cluster name [EKS_CLUSTER] (required)
  --region REGION           AWS region [AWS_REGION, AWS_DEFAULT_REGION] (required)
  --bucket NAME             S3 bucket the pod writes to [E2E_BUCKET] (required)
  --create-bucket           create the bucket first (and delete it with its objects at the end)
  --namespace NS            namespace [E2E_NAMESPACE] (default production)
  --service-account SA      ServiceAccount [E2E_SERVICE_ACCOUNT] (default s3-writer)
  --role-name NAME          IAM role to create [E2E_ROLE_NAME] (default S3WriterRole)
  --policy-name NAME        IAM policy to create [E2E_POLICY_NAME] (default S3WriterPolicy)
  --create-oidc-provider    create the IAM OIDC provider when missing (eksctl if found, else
                            aws iam create-open-id-connect-provider); it is deleted at the end
  --keep-oidc-provider      do not delete an OIDC provider this run created
  --context NAME            kubectl context [KUBE_CONTEXT] (default: the current one, pinned)
  --irsa-webhook PATH       irsa-webhook binary for trust policy / trust check (bare name: PATH)
  --no-irsa-webhook         do not look for one: the walkthrough's trust policy, no trust check
  --aws-cli-image IMAGE     test pod image (default amazon/aws-cli:latest)
  --timeout SECONDS         how long the test pod may take (default 300)
  --strict-node-role        fail (not just warn) when step 7 finds extra node role policies
  --dry-run                 print every command (with placeholders) and exit 0; calls nothing
  -h, --help                this help

Existing IAM roles/policies and ServiceAccounts with the chosen names make it stop before it
creates anything: pick other names. An existing namespace is used and left in place.
EOF
}

# ---- flags -------------------------------------------------------------------------------
CLUSTER="${EKS_CLUSTER:-}"
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
BUCKET="${E2E_BUCKET:-}"
NAMESPACE="${E2E_NAMESPACE:-production}"
SERVICE_ACCOUNT="${E2E_SERVICE_ACCOUNT:-s3-writer}"
ROLE_NAME="${E2E_ROLE_NAME:-S3WriterRole}"
POLICY_NAME="${E2E_POLICY_NAME:-S3WriterPolicy}"
KUBE_CONTEXT="${KUBE_CONTEXT:-}"
IRSA_WEBHOOK=""
NO_IRSA_WEBHOOK=0
AWS_CLI_IMAGE="amazon/aws-cli:latest"
TIMEOUT=300
CREATE_BUCKET=0
CREATE_OIDC=0
KEEP_OIDC=0
STRICT_NODE_ROLE=0
DRY_RUN=0

split_flags "$@"
set -- ${FLAGS[@]+"${FLAGS[@]}"}
while (($#)); do
  case "$1" in
    --cluster) CLUSTER="$(flag_value "$@")"; shift 2 ;;
    --region) REGION="$(flag_value "$@")"; shift 2 ;;
    --bucket) BUCKET="$(flag_value "$@")"; shift 2 ;;
    --namespace) NAMESPACE="$(flag_value "$@")"; shift 2 ;;
    --service-account) SERVICE_ACCOUNT="$(flag_value "$@")"; shift 2 ;;
    --role-name) ROLE_NAME="$(flag_value "$@")"; shift 2 ;;
    --policy-name) POLICY_NAME="$(flag_value "$@")"; shift 2 ;;
    --context) KUBE_CONTEXT="$(flag_value "$@")"; shift 2 ;;
    --irsa-webhook) IRSA_WEBHOOK="$(flag_value "$@")"; shift 2 ;;
    --aws-cli-image) AWS_CLI_IMAGE="$(flag_value "$@")"; shift 2 ;;
    --timeout) TIMEOUT="$(flag_value "$@")"; shift 2 ;;
    --no-irsa-webhook) NO_IRSA_WEBHOOK=1; shift ;;
    --create-bucket) CREATE_BUCKET=1; shift ;;
    --create-oidc-provider) CREATE_OIDC=1; shift ;;
    --keep-oidc-provider) KEEP_OIDC=1; shift ;;
    --strict-node-role) STRICT_NODE_ROLE=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_die "unknown argument: $1" ;;
  esac
done

if [[ $DRY_RUN == 1 ]]; then
  # Placeholders so that a dry run needs no flags; values discovered at run time appear as <...>.
  CLUSTER="${CLUSTER:-my-cluster}"
  REGION="${REGION:-ap-south-1}"
  BUCKET="${BUCKET:-my-app-uploads}"
fi

problems=()
[[ -n $CLUSTER ]] || problems+=("--cluster is required")
[[ -n $REGION ]] || problems+=("--region is required")
[[ -n $BUCKET ]] || problems+=("--bucket is required")
dns1123='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $NAMESPACE =~ $dns1123 && ${#NAMESPACE} -le 63 ]] || problems+=("--namespace \"$NAMESPACE\" is not a valid namespace name")
[[ $SERVICE_ACCOUNT =~ $dns1123 ]] || problems+=("--service-account \"$SERVICE_ACCOUNT\" is not a valid ServiceAccount name")
iam_name='^[A-Za-z0-9+=,.@_-]{1,64}$'
[[ $ROLE_NAME =~ $iam_name ]] || problems+=("--role-name \"$ROLE_NAME\" is not a valid IAM role name")
[[ $POLICY_NAME =~ $iam_name ]] || problems+=("--policy-name \"$POLICY_NAME\" is not a valid IAM policy name")
[[ -z $BUCKET || $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || problems+=("--bucket \"$BUCKET\" is not a valid S3 bucket name")
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || problems+=("--timeout \"$TIMEOUT\" is not a number of seconds")
[[ $NO_IRSA_WEBHOOK == 1 && -n $IRSA_WEBHOOK ]] && problems+=("--irsa-webhook and --no-irsa-webhook exclude each other")
if [[ -n $IRSA_WEBHOOK && $IRSA_WEBHOOK != */* ]] && command -v "$IRSA_WEBHOOK" >/dev/null 2>&1; then
  IRSA_WEBHOOK="$(command -v "$IRSA_WEBHOOK")" # a bare name: the one on PATH
fi
if [[ -n $IRSA_WEBHOOK && ! -x $IRSA_WEBHOOK && $DRY_RUN == 0 ]]; then
  problems+=("--irsa-webhook \"$IRSA_WEBHOOK\" is not an executable file")
fi
if ((${#problems[@]})); then
  for p in "${problems[@]}"; do printf '%s: error: %s\n' "$E2E_NAME" "$p" >&2; done
  echo "see --help" >&2
  exit 2
fi

# The irsa-webhook binary is optional: flag, then PATH, then `make build` output.
if [[ $NO_IRSA_WEBHOOK == 1 ]]; then
  IRSA_WEBHOOK=""
elif [[ -z $IRSA_WEBHOOK ]]; then
  if command -v irsa-webhook >/dev/null 2>&1; then
    IRSA_WEBHOOK="$(command -v irsa-webhook)"
  elif [[ -x $REPO_ROOT/bin/irsa-webhook ]]; then
    IRSA_WEBHOOK="$REPO_ROOT/bin/irsa-webhook"
  fi
fi
# irsa_supports WORDS...: whether the binary has that subcommand (older builds lack `trust`).
irsa_supports() {
  [[ -n $IRSA_WEBHOOK ]] || return 1
  [[ $DRY_RUN == 1 ]] && return 0
  "$IRSA_WEBHOOK" "$@" --help >/dev/null 2>&1
}

if [[ $DRY_RUN == 0 ]]; then
  for tool in aws kubectl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH: it is needed to run the walkthrough (see --help)"
  done
fi
export AWS_PAGER=""

RUN_ID="$(date -u +%Y%m%d%H%M%S)-$$"
POD="irsa-e2e-$RUN_ID"
OBJECT_KEY="irsa-webhook-e2e/$RUN_ID.txt"
AUDIENCE="sts.amazonaws.com"
SUBJECT="system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT"
TOKEN_FILE="/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
TAGS=("Key=created-by,Value=irsa-webhook-e2e" "Key=irsa-e2e-run,Value=$RUN_ID")
WORK="$(mktemp -d "${TMPDIR:-/tmp}/irsa-e2e-eks.XXXXXX")"

on_exit() {
  local rc=$?
  trap - EXIT
  step "Cleanup: remove what this run created, newest first"
  if ! run_deferred && ((rc == 0)); then rc=1; fi
  rm -rf "$WORK"
  if [[ $DRY_RUN == 1 ]]; then
    step "Dry run complete: no command above was run"
    exit "$rc"
  fi
  finish "$rc" "pods running as $SUBJECT assume $ROLE_NAME and can write to s3://$BUCKET"
}
trap_exit on_exit

if [[ $DRY_RUN == 1 ]]; then
  step "DRY RUN: printing the commands this test would run; <...> marks values found at run time"
fi
note "cluster $CLUSTER, region $REGION, bucket $BUCKET, subject $SUBJECT, role $ROLE_NAME, policy $POLICY_NAME, run $RUN_ID"

# ---- preflight ---------------------------------------------------------------------------
step "Preflight: AWS identity and kubectl context"
CALLER="$(capture $'<account-id>\tarn:aws:iam::<account-id>:user/<you>' aws sts get-caller-identity --query '[Account,Arn]' --output text)"
read -r ACCOUNT_ID CALLER_ARN <<<"$CALLER"
PARTITION="$(cut -d: -f2 <<<"$CALLER_ARN")"
[[ -n $ACCOUNT_ID && -n $PARTITION ]] || die "could not read the account from aws sts get-caller-identity (got \"$CALLER\")"
note "account $ACCOUNT_ID, partition $PARTITION, caller $CALLER_ARN"
if [[ -z $KUBE_CONTEXT ]]; then
  KUBE_CONTEXT="$(capture '<current-context>' kubectl config current-context)"
fi
note "kubectl context $KUBE_CONTEXT (pinned for the whole run)"
KUBECTL=(kubectl --context "$KUBE_CONTEXT")

# kube_absent GET-ARGS...: true when the object does not exist (dry run: pretends it does not).
kube_absent() {
  local out
  show_cmd "${KUBECTL[@]}" get "$@" --ignore-not-found -o name
  [[ $DRY_RUN == 1 ]] && return 0
  out="$("${KUBECTL[@]}" get "$@" --ignore-not-found -o name)" || die "kubectl get $* failed: is kubectl configured for cluster $CLUSTER?"
  [[ -z $out ]]
}

# iam_absent CMD...: true when the IAM call fails with NoSuchEntity, false when it succeeds;
# any other error stops the run (dry run: pretends the entity does not exist).
iam_absent() {
  local err
  show_cmd "$@"
  [[ $DRY_RUN == 1 ]] && return 0
  if err="$("$@" 2>&1 >/dev/null)"; then return 1; fi
  [[ $err == *NoSuchEntity* ]] && return 0
  die "$(quote_cmd "$@") failed: $err"
}

step "Preflight: nothing this run creates may exist yet (it only deletes what it created)"
POLICY_ARN="arn:$PARTITION:iam::$ACCOUNT_ID:policy/$POLICY_NAME"
ROLE_ARN="arn:$PARTITION:iam::$ACCOUNT_ID:role/$ROLE_NAME"
iam_absent aws iam get-policy --policy-arn "$POLICY_ARN" ||
  die "IAM policy $POLICY_ARN already exists: pass --policy-name with an unused name"
iam_absent aws iam get-role --role-name "$ROLE_NAME" ||
  die "IAM role $ROLE_NAME already exists: pass --role-name with an unused name"
kube_absent serviceaccount "$SERVICE_ACCOUNT" -n "$NAMESPACE" ||
  die "ServiceAccount $NAMESPACE/$SERVICE_ACCOUNT already exists: this test does not change it; pass --service-account with an unused name"
if [[ $CREATE_BUCKET == 1 ]]; then
  show_cmd aws s3api head-bucket --bucket "$BUCKET" --region "$REGION"
  if [[ $DRY_RUN == 0 ]] && aws s3api head-bucket --bucket "$BUCKET" --region "$REGION" >/dev/null 2>&1; then
    die "bucket $BUCKET already exists: drop --create-bucket to use it, or name another bucket"
  fi
fi

# ---- step 1 ------------------------------------------------------------------------------
step "Step 1: verify the cluster's OIDC issuer has an IAM OIDC provider"
ISSUER_URL="$(capture "https://oidc.eks.$REGION.amazonaws.com/id/<oidc-id>" \
  aws eks describe-cluster --name "$CLUSTER" --region "$REGION" --query cluster.identity.oidc.issuer --output text)"
[[ $ISSUER_URL == https://* ]] || die "cluster $CLUSTER has no OIDC issuer (got \"$ISSUER_URL\"): IRSA needs one"
ISSUER_HOST="${ISSUER_URL#https://}"
PROVIDER_ARN="arn:$PARTITION:iam::$ACCOUNT_ID:oidc-provider/$ISSUER_HOST"
note "issuer $ISSUER_URL; provider $PROVIDER_ARN"

provider_listed() {
  local placeholder="$PROVIDER_ARN" list
  # Dry run: show the creation path when --create-oidc-provider is given, the happy path otherwise.
  [[ $CREATE_OIDC == 1 ]] && placeholder="<other-provider-arns>"
  list="$(capture "$placeholder" aws iam list-open-id-connect-providers --query 'OpenIDConnectProviderList[].Arn' --output text)"
  tr -s '[:space:]' '\n' <<<"$list" | grep -Fxq "$PROVIDER_ARN"
}

if provider_listed; then
  if [[ $DRY_RUN == 1 ]]; then
    note "(dry run: taken as present; with --create-oidc-provider the creation commands are shown)"
  else
    note "ok: IAM OIDC provider exists"
  fi
elif [[ $CREATE_OIDC == 0 ]]; then
  die "no IAM OIDC provider for $ISSUER_HOST in account $ACCOUNT_ID. Create it (walkthrough step 1:
  eksctl utils associate-iam-oidc-provider --cluster $CLUSTER --region $REGION --approve)
or re-run with --create-oidc-provider"
else
  note "no IAM OIDC provider for this issuer: creating it (--create-oidc-provider)"
  if command -v eksctl >/dev/null 2>&1; then
    run eksctl utils associate-iam-oidc-provider --cluster "$CLUSTER" --region "$REGION" --approve
  else
    issuer_dns="${ISSUER_HOST%%/*}"
    show_cmd openssl s_client -connect "$issuer_dns:443" -servername "$issuer_dns"
    note "  | openssl x509 -fingerprint -noout -sha1 | sed 's/://g' | awk -F= '{print tolower(\$2)}'"
    THUMBPRINT="<sha1-thumbprint>"
    if [[ $DRY_RUN == 0 ]]; then
      command -v openssl >/dev/null 2>&1 || die "neither eksctl nor openssl found: one is needed to create the OIDC provider"
      THUMBPRINT="$(openssl s_client -connect "$issuer_dns:443" -servername "$issuer_dns" </dev/null 2>/dev/null |
        openssl x509 -fingerprint -noout -sha1 | sed 's/://g' | awk -F= '{print tolower($2)}')"
      [[ $THUMBPRINT =~ ^[0-9a-f]{40}$ ]] || die "could not read the TLS certificate thumbprint of $issuer_dns"
    fi
    run aws iam create-open-id-connect-provider --url "$ISSUER_URL" --client-id-list "$AUDIENCE" \
      --thumbprint-list "$THUMBPRINT" --tags "${TAGS[@]}"
  fi
  if [[ $KEEP_OIDC == 0 ]]; then
    defer aws iam delete-open-id-connect-provider --open-id-connect-provider-arn "$PROVIDER_ARN"
  else
    note "the provider will be kept (--keep-oidc-provider)"
  fi
  if [[ $DRY_RUN == 0 ]] && ! provider_listed; then
    die "created the OIDC provider but $PROVIDER_ARN is not listed"
  fi
fi

# ---- step 2 ------------------------------------------------------------------------------
step "Step 2: create the IAM policy $POLICY_NAME (write to s3://$BUCKET)"
if [[ $CREATE_BUCKET == 1 ]]; then
  location=()
  [[ $REGION == us-east-1 ]] || location=(--create-bucket-configuration "LocationConstraint=$REGION")
  run aws s3api create-bucket --bucket "$BUCKET" --region "$REGION" ${location[@]+"${location[@]}"}
  defer aws s3 rb "s3://$BUCKET" --force --region "$REGION"
else
  run aws s3api head-bucket --bucket "$BUCKET" --region "$REGION" ||
    die "bucket $BUCKET is not reachable: create it, pass --create-bucket, or name another with --bucket"
fi

cat >"$WORK/s3-writer-policy.json" <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:PutObject",
        "s3:PutObjectAcl"
      ],
      "Resource": "arn:$PARTITION:s3:::$BUCKET/*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "s3:ListBucket"
      ],
      "Resource": "arn:$PARTITION:s3:::$BUCKET"
    }
  ]
}
EOF
show_file "$WORK/s3-writer-policy.json"
POLICY_ARN="$(capture "$POLICY_ARN" aws iam create-policy --policy-name "$POLICY_NAME" \
  --policy-document "file://$WORK/s3-writer-policy.json" --tags "${TAGS[@]}" --query Policy.Arn --output text)"
defer aws iam delete-policy --policy-arn "$POLICY_ARN"

# ---- step 3 ------------------------------------------------------------------------------
step "Step 3: create the IAM role $ROLE_NAME, trusted only by $SUBJECT"

walkthrough_trust_policy() {
  cat <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {
        "Federated": "$PROVIDER_ARN"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "$ISSUER_HOST:sub": "$SUBJECT",
          "$ISSUER_HOST:aud": "$AUDIENCE"
        }
      }
    }
  ]
}
EOF
}
TRUST="$WORK/trust-policy.json"
if irsa_supports trust policy; then
  show_cmd "$IRSA_WEBHOOK" trust policy --role-arn "$ROLE_ARN" --issuer "$ISSUER_URL" \
    --namespace "$NAMESPACE" --service-account "$SERVICE_ACCOUNT"
  if [[ $DRY_RUN == 1 ]]; then
    note "(dry run: the walkthrough's equivalent document is shown)"
    walkthrough_trust_policy >"$TRUST"
  else
    "$IRSA_WEBHOOK" trust policy --role-arn "$ROLE_ARN" --issuer "$ISSUER_URL" \
      --namespace "$NAMESPACE" --service-account "$SERVICE_ACCOUNT" >"$TRUST" ||
      die "irsa-webhook trust policy failed"
    for want in "\"$ISSUER_HOST:sub\"" "\"$SUBJECT\"" "\"$ISSUER_HOST:aud\"" "\"$PROVIDER_ARN\"" "sts:AssumeRoleWithWebIdentity"; do
      grep -Fq -- "$want" "$TRUST" || die "irsa-webhook trust policy wrote a document without $want"
    done
  fi
else
  [[ -n $IRSA_WEBHOOK ]] && warn "$IRSA_WEBHOOK has no 'trust policy' command: using the walkthrough's document"
  note "trust policy written as in the walkthrough (no irsa-webhook binary with 'trust policy')"
  walkthrough_trust_policy >"$TRUST"
fi
show_file "$TRUST"
ROLE_ARN="$(capture "$ROLE_ARN" aws iam create-role --role-name "$ROLE_NAME" \
  --assume-role-policy-document "file://$TRUST" --description "irsa-webhook e2e run $RUN_ID" \
  --tags "${TAGS[@]}" --query Role.Arn --output text)"
defer aws iam delete-role --role-name "$ROLE_NAME"
run aws iam attach-role-policy --role-name "$ROLE_NAME" --policy-arn "$POLICY_ARN"
defer aws iam detach-role-policy --role-name "$ROLE_NAME" --policy-arn "$POLICY_ARN"
ROLE_ARN="$(capture "$ROLE_ARN" aws iam get-role --role-name "$ROLE_NAME" --query Role.Arn --output text)"
note "Role ARN: $ROLE_ARN"

# ---- step 4 ------------------------------------------------------------------------------
step "Step 4: create the namespace $NAMESPACE and the ServiceAccount $SERVICE_ACCOUNT annotated with the role"
if kube_absent namespace "$NAMESPACE"; then
  run "${KUBECTL[@]}" create namespace "$NAMESPACE"
  defer "${KUBECTL[@]}" delete namespace "$NAMESPACE" --ignore-not-found --timeout=180s
else
  note "namespace $NAMESPACE exists: it is used and left in place"
fi
run "${KUBECTL[@]}" create serviceaccount "$SERVICE_ACCOUNT" -n "$NAMESPACE"
defer "${KUBECTL[@]}" delete serviceaccount "$SERVICE_ACCOUNT" -n "$NAMESPACE" --ignore-not-found
run "${KUBECTL[@]}" annotate serviceaccount "$SERVICE_ACCOUNT" -n "$NAMESPACE" "eks.amazonaws.com/role-arn=$ROLE_ARN"

if irsa_supports trust check; then
  note "irsa-webhook checks that the role trusts the ServiceAccount, as the admission check would"
  run "$IRSA_WEBHOOK" trust check --role-arn "$ROLE_ARN" --issuer "$ISSUER_URL" \
    --namespace "$NAMESPACE" --service-account "$SERVICE_ACCOUNT" ||
    die "irsa-webhook trust check says role $ROLE_NAME does not trust $SUBJECT"
else
  note "skipped: irsa-webhook trust check (no irsa-webhook binary with 'trust check')"
fi

# ---- step 5 ------------------------------------------------------------------------------
step "Step 5: run a pod ($AWS_CLI_IMAGE) as $NAMESPACE/$SERVICE_ACCOUNT"
pod_script() {
  pod_claims_snippet
  # IAM is eventually consistent: a role created seconds ago may not be assumable yet, so the
  # identity call is retried for about a minute before it counts as a failure.
  cat <<'SH'
status=0
i=0
while :; do
  if out=$(aws sts get-caller-identity --query Arn --output text 2>&1); then
    echo "CALLER_ARN=$out"
    break
  fi
  i=$((i + 1))
  if [ "$i" -ge 12 ]; then
    echo "CALLER_ERROR=$(echo "$out" | tr '\n' ' ')"
    status=1
    break
  fi
  sleep 5
done
if out=$(aws s3api put-object --bucket "$S3_BUCKET" --key "$S3_KEY" --body /etc/hostname 2>&1); then
  echo "S3_PUT=ok"
else
  echo "S3_PUT=failed: $(echo "$out" | tr '\n' ' ')"
  status=1
fi
exit "$status"
SH
}
{
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $POD
  namespace: $NAMESPACE
  labels:
    app.kubernetes.io/name: irsa-e2e
spec:
  serviceAccountName: $SERVICE_ACCOUNT # the key field
  restartPolicy: Never
  containers:
    - name: aws
      image: $AWS_CLI_IMAGE
      command: ["/bin/sh", "-c"]
      args:
        - |
EOF
  pod_script | sed 's/^/          /'
  cat <<EOF
      env:
        - name: AWS_REGION
          value: "$REGION"
        - name: S3_BUCKET
          value: "$BUCKET"
        - name: S3_KEY
          value: "$OBJECT_KEY"
EOF
} >"$WORK/pod.yaml"
# Registered before the pod runs: the object may be written even when a later check fails.
defer aws s3api delete-object --bucket "$BUCKET" --key "$OBJECT_KEY" --region "$REGION"
show_file "$WORK/pod.yaml"
run "${KUBECTL[@]}" apply -f "$WORK/pod.yaml"
defer "${KUBECTL[@]}" delete pod "$POD" -n "$NAMESPACE" --ignore-not-found --timeout=120s

show_cmd "${KUBECTL[@]}" get pod "$POD" -n "$NAMESPACE" -o 'jsonpath={.status.phase}'
note "(polled every 2s until Succeeded or Failed, at most ${TIMEOUT}s)"
PHASE="Succeeded"
if [[ $DRY_RUN == 0 ]]; then
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    PHASE="$("${KUBECTL[@]}" get pod "$POD" -n "$NAMESPACE" -o 'jsonpath={.status.phase}')" || PHASE=""
    [[ $PHASE == Succeeded || $PHASE == Failed ]] && break
    if ((SECONDS >= deadline)); then
      "${KUBECTL[@]}" describe pod "$POD" -n "$NAMESPACE" >&2 || true
      die "pod $POD did not finish within ${TIMEOUT}s (phase \"$PHASE\")"
    fi
    sleep 2
  done
fi
[[ $DRY_RUN == 1 ]] || note "pod phase: $PHASE"
LOGS="$(capture '<pod log: KEY=VALUE lines>' "${KUBECTL[@]}" logs "$POD" -n "$NAMESPACE")"
if [[ $DRY_RUN == 0 ]]; then
  while IFS= read -r line; do printf '    pod> %s\n' "$line"; done <<<"$LOGS" >&3
fi

# ---- step 6 ------------------------------------------------------------------------------
step "Step 6: verify the pod's credentials and its S3 write"
if [[ $DRY_RUN == 1 ]]; then
  note "would assert: AWS_ROLE_ARN = $ROLE_ARN"
  note "would assert: AWS_WEB_IDENTITY_TOKEN_FILE = $TOKEN_FILE"
  note "would assert: token claims iss = $ISSUER_URL, sub = $SUBJECT, aud contains $AUDIENCE"
  note "would assert: sts get-caller-identity Arn = arn:$PARTITION:sts::$ACCOUNT_ID:assumed-role/$ROLE_NAME/<session>"
  note "would assert: S3 put-object of s3://$BUCKET/$OBJECT_KEY succeeded"
fi
CLAIMS="$(log_value TOKEN_CLAIMS "$LOGS")"
if [[ $DRY_RUN == 0 ]]; then
  expect_eq "pod phase" "$PHASE" "Succeeded"
  expect_eq AWS_ROLE_ARN "$(log_value AWS_ROLE_ARN "$LOGS")" "$ROLE_ARN"
  expect_eq AWS_WEB_IDENTITY_TOKEN_FILE "$(log_value AWS_WEB_IDENTITY_TOKEN_FILE "$LOGS")" "$TOKEN_FILE"
  expect_eq "token iss" "$(claim iss "$CLAIMS")" "$ISSUER_URL"
  expect_eq "token sub" "$(claim sub "$CLAIMS")" "$SUBJECT"
  expect_true "token aud" "contains $AUDIENCE" aud_has "$AUDIENCE" "$CLAIMS"
  expect_match "assumed identity" "$(log_value CALLER_ARN "$LOGS")" \
    "^arn:$PARTITION:sts::$ACCOUNT_ID:assumed-role/$ROLE_NAME/.+$"
  expect_eq "S3 put-object" "$(log_value S3_PUT "$LOGS")" "ok"
fi
run aws s3api head-object --bucket "$BUCKET" --key "$OBJECT_KEY" --region "$REGION" --query ContentLength --output text ||
  FAILURES+=("s3://$BUCKET/$OBJECT_KEY: not found after the pod's put-object")

if ! check_failures; then
  # The walkthrough's debugging section, applied to what the pod printed.
  errors="$(log_value CALLER_ERROR "$LOGS") $(log_value S3_PUT "$LOGS")"
  echo "Debugging hints (walkthrough):" >&2
  if [[ -z $(log_value AWS_ROLE_ARN "$LOGS") || $errors == *NoCredentialProviders* || $errors == *"Unable to locate credentials"* ]]; then
    echo "- no credentials: the pod is not using the annotated ServiceAccount, or no webhook injected it:" >&2
    "${KUBECTL[@]}" get pod "$POD" -n "$NAMESPACE" -o yaml | grep -E 'serviceAccountName|AWS_|eks.amazonaws.com' >&2 || true
  fi
  if [[ $errors == *InvalidIdentityToken* ]]; then
    echo "- InvalidIdentityToken: the trust policy's OIDC URL does not match the issuer $ISSUER_URL" >&2
  fi
  if [[ $errors == *AccessDenied* ]]; then
    echo "- AccessDenied: the role is assumed but may not do the action; IAM's simulation says:" >&2
    aws iam simulate-principal-policy --policy-source-arn "$ROLE_ARN" --action-names s3:PutObject \
      --resource-arns "arn:$PARTITION:s3:::$BUCKET/$OBJECT_KEY" \
      --query 'EvaluationResults[].[EvalActionName,EvalDecision]' --output text >&2 || true
  fi
  exit 1
fi

# ---- step 7 ------------------------------------------------------------------------------
step "Step 7: node group roles should hold only the three policies nodes need"
NODE_POLICIES=(AmazonEKSWorkerNodePolicy AmazonEKS_CNI_Policy AmazonEC2ContainerRegistryReadOnly)
note "allowed: ${NODE_POLICIES[*]}; anything else belongs on a per-service IRSA role"
NODEGROUPS="$(capture '<nodegroup>' aws eks list-nodegroups --cluster-name "$CLUSTER" --region "$REGION" --query nodegroups --output text)"
extras=()
for ng in $NODEGROUPS; do
  [[ $ng == None ]] && continue
  node_role_arn="$(capture 'arn:aws:iam::<account-id>:role/<node-role>' aws eks describe-nodegroup --cluster-name "$CLUSTER" \
    --nodegroup-name "$ng" --region "$REGION" --query nodegroup.nodeRole --output text)"
  node_role="${node_role_arn##*/}"
  attached="$(capture '<policy-names>' aws iam list-attached-role-policies --role-name "$node_role" --query 'AttachedPolicies[].PolicyName' --output text)"
  inline="$(capture '<inline-policy-names>' aws iam list-role-policies --role-name "$node_role" --query PolicyNames --output text)"
  [[ $DRY_RUN == 1 ]] && continue
  for p in $attached; do
    [[ $p == None ]] && continue
    [[ " ${NODE_POLICIES[*]} " == *" $p "* ]] || extras+=("$ng ($node_role): attached $p")
  done
  for p in $inline; do
    [[ $p == None ]] && continue
    extras+=("$ng ($node_role): inline $p")
  done
done
if [[ $DRY_RUN == 1 ]]; then
  note "would warn about (fail with --strict-node-role on) any other attached or inline policy"
elif ((${#extras[@]})); then
  for e in "${extras[@]}"; do warn "node role policy beyond the walkthrough's three: $e"; done
  if [[ $STRICT_NODE_ROLE == 1 ]]; then
    die "node group roles hold policies pods could use without IRSA (--strict-node-role)"
  fi
else
  note "ok: no extra node role policies found"
fi
