package eks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/test/e2e/scripttest"
)

// Fakes of the AWS CLI, kubectl and eksctl that answer the way the real ones do for the calls
// run.sh makes, so the whole run (checks, assertions, cleanup) can be exercised without an AWS
// account. FAKE_* variables steer them; FAKE_STATE is a directory for what they remember.
const (
	fakeIssuerHost = "oidc.eks.ap-south-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
	fakeAccount    = "123456789012"
	fakeRoleARN    = "arn:aws:iam::" + fakeAccount + ":role/S3WriterRole"
)

const fakeAWS = `noentity() { echo "An error occurred (NoSuchEntity) when calling the $1 operation: not found" >&2; exit 254; }
case "$1 $2" in
"sts get-caller-identity") printf '123456789012\tarn:aws:iam::123456789012:user/e2e\n' ;;
"eks describe-cluster") echo "https://` + fakeIssuerHost + `" ;;
"iam list-open-id-connect-providers")
  if [ -z "${FAKE_NO_PROVIDER:-}" ] || [ -e "$FAKE_STATE/provider" ]; then
    printf 'arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/OTHER\tarn:aws:iam::123456789012:oidc-provider/` + fakeIssuerHost + `\n'
  fi ;;
"iam create-open-id-connect-provider") touch "$FAKE_STATE/provider" ;;
"iam get-policy") noentity GetPolicy ;;
"iam get-role")
  case "$*" in
  *--query*) echo "` + fakeRoleARN + `" ;;
  *) if [ -n "${FAKE_ROLE_EXISTS:-}" ]; then echo '{"Role":{}}'; else noentity GetRole; fi ;;
  esac ;;
"iam create-policy") echo "arn:aws:iam::123456789012:policy/S3WriterPolicy" ;;
"iam create-role") echo "` + fakeRoleARN + `" ;;
"s3api head-object") echo 13 ;;
"eks list-nodegroups") printf 'ng-1\n' ;;
"eks describe-nodegroup") echo "arn:aws:iam::123456789012:role/node-role" ;;
"iam list-attached-role-policies") printf 'AmazonEKSWorkerNodePolicy\tAmazonEKS_CNI_Policy\tAmazonS3FullAccess\n' ;;
"iam list-role-policies") echo "" ;;
"iam simulate-principal-policy") printf 's3:PutObject\timplicitDeny\n' ;;
esac
exit 0`

const fakeKubectl = `[ "$1" = --context ] && shift 2
case "$1" in
config) echo e2e-context ;;
get)
  case "$*" in
  "get namespace "*) [ -n "${FAKE_NS_EXISTS:-}" ] && echo "namespace/$3" ;;
  *"-o name"*) ;;
  *status.phase*) printf '%s' "${FAKE_PHASE:-Succeeded}" ;;
  esac ;;
logs) cat "$FAKE_POD_LOG" ;;
esac
exit 0`

const fakeEksctl = `touch "$FAKE_STATE/provider"`

// podLog is what the test pod prints when everything works; edit replaces whole lines.
func podLog(edit map[string]string) string {
	claims := `{"aud":["sts.amazonaws.com"],"exp":1900000000,"iat":1800000000,"iss":"https://` + fakeIssuerHost +
		`","kubernetes.io":{"namespace":"production"},"sub":"system:serviceaccount:production:s3-writer"}`
	lines := map[string]string{
		"AWS_ROLE_ARN":                fakeRoleARN,
		"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
		"TOKEN_CLAIMS":                claims,
		"CALLER_ARN":                  "arn:aws:sts::" + fakeAccount + ":assumed-role/S3WriterRole/botocore-session-1700000000",
		"S3_PUT":                      "ok",
	}
	for k, v := range edit {
		lines[k] = v
	}
	var b strings.Builder
	for _, k := range []string{"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "TOKEN_CLAIMS", "CALLER_ARN", "CALLER_ERROR", "S3_PUT"} {
		if v, ok := lines[k]; ok {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return b.String()
}

// fakeIrsaWebhook answers `trust policy` with the minimal policy and `trust check` with success.
var fakeIrsaWebhook = `case "$1 $2" in
"trust policy") [ "$3" = --help ] && exit 0; echo '` + strings.ReplaceAll(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
"Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/HOST"},"Action":"sts:AssumeRoleWithWebIdentity",
"Condition":{"StringEquals":{"HOST:sub":"system:serviceaccount:production:s3-writer","HOST:aud":"sts.amazonaws.com"}}}]}`, "HOST", fakeIssuerHost) + `' ;;
"trust check") exit 0 ;;
*) exit 2 ;;
esac`

func TestRunWithFakes(t *testing.T) {
	base := []string{"--cluster", "my-cluster", "--region", "ap-south-1", "--bucket", "my-app-uploads"}
	cases := []struct {
		name     string
		args     []string
		env      []string
		log      map[string]string
		irsa     bool // put the fake irsa-webhook on PATH and use it
		wantCode int
		// wantInOrder are call substrings that must appear in this order.
		wantInOrder []string
		notCalled   []string
		wantStdout  []string
		wantStderr  []string
	}{
		{
			name: "walkthrough passes, everything created is removed newest first",
			args: append([]string{"--no-irsa-webhook"}, base...),
			wantInOrder: []string{
				"aws sts get-caller-identity", "aws iam get-policy", "aws iam get-role --role-name S3WriterRole",
				"aws eks describe-cluster", "aws iam list-open-id-connect-providers",
				"aws s3api head-bucket", "aws iam create-policy", "aws iam create-role", "aws iam attach-role-policy",
				"create namespace production", "create serviceaccount s3-writer", "annotate serviceaccount s3-writer",
				"apply -f", "logs irsa-e2e-", "aws s3api head-object", "aws eks list-nodegroups",
				// cleanup
				"delete pod irsa-e2e-", "aws s3api delete-object", "delete serviceaccount s3-writer", "delete namespace production",
				"aws iam detach-role-policy", "aws iam delete-role", "aws iam delete-policy",
			},
			notCalled:  []string{"open-id-connect-provider --", "eksctl", "simulate-principal-policy", "create-bucket", "s3 rb"},
			wantStdout: []string{"ok: AWS_ROLE_ARN = " + fakeRoleARN, "ok: token sub = system:serviceaccount:production:s3-writer", "ok: token aud contains sts.amazonaws.com", "PASS:"},
			wantStderr: []string{"node role policy beyond the walkthrough's three: ng-1 (node-role): attached AmazonS3FullAccess"},
		},
		{
			name:        "step 7 strict: an extra node role policy fails the run, cleanup still runs",
			args:        append([]string{"--no-irsa-webhook", "--strict-node-role"}, base...),
			wantCode:    1,
			wantInOrder: []string{"aws iam list-attached-role-policies", "aws iam delete-role"},
			wantStderr:  []string{"--strict-node-role"},
		},
		{
			name:        "irsa-webhook writes the trust policy and checks the role",
			args:        base,
			irsa:        true,
			wantInOrder: []string{"irsa-webhook trust policy --help", "irsa-webhook trust policy --role-arn " + fakeRoleARN + " --issuer https://" + fakeIssuerHost + " --namespace production --service-account s3-writer", "aws iam create-role", "annotate serviceaccount", "irsa-webhook trust check --help", "irsa-webhook trust check --role-arn " + fakeRoleARN, "apply -f"},
			wantStdout:  []string{"PASS:"},
		},
		{
			name:       "existing namespace is used and left in place",
			args:       append([]string{"--no-irsa-webhook"}, base...),
			env:        []string{"FAKE_NS_EXISTS=1"},
			wantStdout: []string{"namespace production exists: it is used and left in place", "PASS:"},
			notCalled:  []string{"create namespace", "delete namespace"},
		},
		{
			name:        "OIDC provider missing and created: deleted at the end",
			args:        append([]string{"--no-irsa-webhook", "--create-oidc-provider"}, base...),
			env:         []string{"FAKE_NO_PROVIDER=1"},
			wantInOrder: []string{"eksctl utils associate-iam-oidc-provider --cluster my-cluster --region ap-south-1 --approve", "aws iam create-policy", "aws iam delete-policy", "aws iam delete-open-id-connect-provider --open-id-connect-provider-arn arn:aws:iam::123456789012:oidc-provider/" + fakeIssuerHost},
			wantStdout:  []string{"PASS:"},
		},
		{
			name:       "OIDC provider missing: stops before creating anything",
			args:       append([]string{"--no-irsa-webhook"}, base...),
			env:        []string{"FAKE_NO_PROVIDER=1"},
			wantCode:   1,
			wantStderr: []string{"no IAM OIDC provider for " + fakeIssuerHost, "--create-oidc-provider"},
			notCalled:  []string{"create", "delete", "eksctl"},
		},
		{
			name:       "role exists: stops before creating anything, deletes nothing",
			args:       append([]string{"--no-irsa-webhook"}, base...),
			env:        []string{"FAKE_ROLE_EXISTS=1"},
			wantCode:   1,
			wantStderr: []string{"IAM role S3WriterRole already exists"},
			notCalled:  []string{"create", "delete", "detach"},
		},
		{
			name: "pod without credentials: every failure reported, hints, cleanup",
			args: append([]string{"--no-irsa-webhook"}, base...),
			log: map[string]string{"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "TOKEN_CLAIMS": "", "CALLER_ARN": "",
				"CALLER_ERROR": "Unable to locate credentials. You can configure credentials by running \"aws configure\".", "S3_PUT": "failed: Unable to locate credentials"},
			env:      []string{"FAKE_PHASE=Failed"},
			wantCode: 1,
			wantStderr: []string{
				`FAIL: pod phase: got "Failed", want "Succeeded"`,
				`FAIL: AWS_ROLE_ARN: got "", want "` + fakeRoleARN + `"`,
				"FAIL: token sub", "FAIL: token aud: not contains sts.amazonaws.com", "FAIL: assumed identity", "FAIL: S3 put-object",
				"the pod is not using the annotated ServiceAccount",
			},
			wantInOrder: []string{"get pod irsa-e2e-", "delete pod", "aws iam delete-role", "aws iam delete-policy"},
			notCalled:   []string{"aws eks list-nodegroups"},
		},
		{
			name:        "assumed the wrong role and S3 denied: AccessDenied hint runs IAM's simulation",
			args:        append([]string{"--no-irsa-webhook"}, base...),
			log:         map[string]string{"CALLER_ARN": "arn:aws:sts::123456789012:assumed-role/node-role/i-0abc", "S3_PUT": "failed: An error occurred (AccessDenied) when calling the PutObject operation"},
			wantCode:    1,
			wantStderr:  []string{"FAIL: assumed identity", "AccessDenied: the role is assumed but may not do the action", "s3:PutObject\timplicitDeny"},
			wantInOrder: []string{"aws iam simulate-principal-policy --policy-source-arn " + fakeRoleARN, "aws iam delete-role"},
		},
		{
			name:       "token for another audience and subject",
			args:       append([]string{"--no-irsa-webhook"}, base...),
			log:        map[string]string{"TOKEN_CLAIMS": `{"aud":["https://kubernetes.default.svc"],"iss":"https://` + fakeIssuerHost + `","sub":"system:serviceaccount:production:default"}`},
			wantCode:   1,
			wantStderr: []string{`FAIL: token sub: got "system:serviceaccount:production:default"`, "FAIL: token aud"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fakes := map[string]string{"aws": fakeAWS, "kubectl": fakeKubectl, "eksctl": fakeEksctl}
			if tc.irsa {
				fakes["irsa-webhook"] = fakeIrsaWebhook
			}
			logFile := filepath.Join(t.TempDir(), "pod.log")
			if err := os.WriteFile(logFile, []byte(podLog(tc.log)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runScript(t, fakes, append([]string{"FAKE_POD_LOG=" + logFile}, tc.env...), tc.args...)
			if r.Code != tc.wantCode {
				t.Errorf("exit code %d, want %d", r.Code, tc.wantCode)
			}
			r.Check(t, scripttest.Want{InOrder: tc.wantInOrder, NotCalled: tc.notCalled, Stdout: tc.wantStdout, Stderr: tc.wantStderr})
			if t.Failed() {
				t.Logf("calls:\n%s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Calls, "\n"), r.Stdout, r.Stderr)
			}
		})
	}
}
