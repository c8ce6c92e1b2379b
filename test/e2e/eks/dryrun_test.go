package eks_test

import (
	"strings"
	"testing"

	"github.com/irsa-webhook/irsa-webhook/test/e2e/scripttest"
)

// runScript runs run.sh with fakes first on PATH; the variables the script reads from the
// environment are cleared so the machine's settings cannot leak in.
func runScript(t *testing.T, fakes map[string]string, env []string, args ...string) scripttest.Result {
	t.Helper()
	drop := func(name string) bool {
		return strings.HasPrefix(name, "AWS_") || strings.HasPrefix(name, "E2E_") ||
			name == "EKS_CLUSTER" || name == "KUBE_CONTEXT" || name == "KUBECONFIG"
	}
	return scripttest.Run(t, scripttest.Options{Fakes: fakes, Drop: drop, Env: env}, args...)
}

// forbidden is a fake that must never run: its call is logged, and it fails.
const forbidden = "echo 'fake: must not be called in a dry run' >&2; exit 97"

func TestDryRun(t *testing.T) {
	fakes := map[string]string{"aws": forbidden, "kubectl": forbidden, "eksctl": forbidden, "irsa-webhook": forbidden, "openssl": forbidden}
	const issuerHost = "oidc.eks.ap-south-1.amazonaws.com/id/<oidc-id>"
	cases := []struct {
		name    string
		args    []string
		noTools []string // fakes left off PATH
		want    []string
		notWant []string
	}{
		{
			name: "no flags: the walkthrough's names",
			args: []string{"--dry-run"},
			want: []string{
				"==> Step 1:", "==> Step 2:", "==> Step 3:", "==> Step 4:", "==> Step 5:", "==> Step 6:", "==> Step 7:", "==> Cleanup:",
				// step 1
				"+ aws eks describe-cluster --name my-cluster --region ap-south-1 --query cluster.identity.oidc.issuer --output text",
				"+ aws iam list-open-id-connect-providers",
				// step 2
				"+ aws iam create-policy --policy-name S3WriterPolicy --policy-document file://",
				`"Resource": "arn:aws:s3:::my-app-uploads/*"`,
				`"s3:PutObject"`,
				// step 3: the trust policy and the role
				`"Federated": "arn:aws:iam::<account-id>:oidc-provider/` + issuerHost + `"`,
				`"Action": "sts:AssumeRoleWithWebIdentity"`,
				`"` + issuerHost + `:sub": "system:serviceaccount:production:s3-writer"`,
				`"` + issuerHost + `:aud": "sts.amazonaws.com"`,
				"+ aws iam create-role --role-name S3WriterRole --assume-role-policy-document file://",
				"+ aws iam attach-role-policy --role-name S3WriterRole --policy-arn 'arn:aws:iam::<account-id>:policy/S3WriterPolicy'",
				// step 4
				"create namespace production",
				"create serviceaccount s3-writer -n production",
				"annotate serviceaccount s3-writer -n production 'eks.amazonaws.com/role-arn=arn:aws:iam::<account-id>:role/S3WriterRole'",
				// step 5/6: the pod
				"apply -f ",
				"serviceAccountName: s3-writer",
				"image: amazon/aws-cli:latest",
				"aws sts get-caller-identity --query Arn --output text",
				"aws s3api put-object --bucket \"$S3_BUCKET\"",
				"would assert: sts get-caller-identity Arn = arn:aws:sts::<account-id>:assumed-role/S3WriterRole/<session>",
				"+ aws s3api head-object --bucket my-app-uploads",
				// step 7
				"+ aws eks list-nodegroups --cluster-name my-cluster",
				"+ aws iam list-attached-role-policies --role-name '<node-role>'",
				// cleanup, newest first
				"delete pod irsa-e2e-",
				"+ aws s3api delete-object --bucket my-app-uploads --key irsa-webhook-e2e/",
				"delete serviceaccount s3-writer -n production --ignore-not-found",
				"delete namespace production --ignore-not-found",
				"+ aws iam detach-role-policy --role-name S3WriterRole --policy-arn 'arn:aws:iam::<account-id>:policy/S3WriterPolicy'",
				"+ aws iam delete-role --role-name S3WriterRole",
				"+ aws iam delete-policy --policy-arn 'arn:aws:iam::<account-id>:policy/S3WriterPolicy'",
				"==> Dry run complete: no command above was run",
			},
			notWant: []string{"create-open-id-connect-provider", "eksctl", "delete-open-id-connect-provider", "create-bucket"},
		},
		{
			name: "own names, OIDC provider and bucket created with eksctl",
			args: []string{"--dry-run", "--cluster", "prod-1", "--region=eu-west-1", "--bucket", "uploads-e2e", "--namespace", "team-a",
				"--service-account", "writer", "--role-name", "E2ERole", "--policy-name", "E2EPolicy", "--create-oidc-provider", "--create-bucket"},
			want: []string{
				"+ eksctl utils associate-iam-oidc-provider --cluster prod-1 --region eu-west-1 --approve",
				"+ aws s3api create-bucket --bucket uploads-e2e --region eu-west-1 --create-bucket-configuration LocationConstraint=eu-west-1",
				`"oidc.eks.eu-west-1.amazonaws.com/id/<oidc-id>:sub": "system:serviceaccount:team-a:writer"`,
				"+ aws iam create-role --role-name E2ERole",
				"annotate serviceaccount writer -n team-a 'eks.amazonaws.com/role-arn=arn:aws:iam::<account-id>:role/E2ERole'",
				"+ aws iam delete-policy --policy-arn 'arn:aws:iam::<account-id>:policy/E2EPolicy'",
				"+ aws s3 rb s3://uploads-e2e --force --region eu-west-1",
				"+ aws iam delete-open-id-connect-provider --open-id-connect-provider-arn 'arn:aws:iam::<account-id>:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/<oidc-id>'",
			},
		},
		{
			name:    "OIDC provider created without eksctl",
			args:    []string{"--dry-run", "--create-oidc-provider", "--keep-oidc-provider"},
			noTools: []string{"eksctl"},
			want: []string{
				"+ openssl s_client -connect oidc.eks.ap-south-1.amazonaws.com:443",
				"+ aws iam create-open-id-connect-provider --url 'https://" + issuerHost + "' --client-id-list sts.amazonaws.com --thumbprint-list '<sha1-thumbprint>'",
				"the provider will be kept",
			},
			notWant: []string{"delete-open-id-connect-provider"},
		},
		{
			name: "irsa-webhook writes the trust policy and checks the role",
			args: []string{"--dry-run", "--irsa-webhook", "irsa-webhook"},
			want: []string{
				"/irsa-webhook trust policy --role-arn 'arn:aws:iam::<account-id>:role/S3WriterRole' --issuer 'https://" + issuerHost + "' --namespace production --service-account s3-writer",
				"/irsa-webhook trust check --role-arn 'arn:aws:iam::<account-id>:role/S3WriterRole' --issuer 'https://" + issuerHost + "' --namespace production --service-account s3-writer",
				`"` + issuerHost + `:sub": "system:serviceaccount:production:s3-writer"`,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := map[string]string{}
			for k, v := range fakes {
				f[k] = v
			}
			for _, name := range tc.noTools {
				delete(f, name)
			}
			r := runScript(t, f, nil, tc.args...)
			if r.Code != 0 {
				t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
			}
			if len(r.Calls) > 0 {
				t.Errorf("a dry run called: %q", r.Calls)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(r.Stdout, nw) {
					t.Errorf("output has %q", nw)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.Stdout, r.Stderr)
			}
		})
	}
}

// TestDryRunCleanupOrder checks the cleanup commands come newest first.
func TestDryRunCleanupOrder(t *testing.T) {
	r := runScript(t, map[string]string{"aws": forbidden, "kubectl": forbidden, "eksctl": forbidden},
		nil, "--dry-run", "--create-oidc-provider", "--create-bucket")
	if r.Code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", r.Code, r.Stderr)
	}
	_, cleanup, ok := strings.Cut(r.Stdout, "==> Cleanup:")
	if !ok {
		t.Fatalf("no cleanup step in:\n%s", r.Stdout)
	}
	order := []string{"delete pod", "delete-object", "delete serviceaccount", "delete namespace",
		"detach-role-policy", "delete-role", "delete-policy", "s3 rb", "delete-open-id-connect-provider"}
	last := -1
	for _, o := range order {
		i := strings.Index(cleanup, o)
		if i < 0 {
			t.Errorf("cleanup lacks %q", o)
			continue
		}
		if i < last {
			t.Errorf("cleanup runs %q too early", o)
		}
		last = i
	}
	if t.Failed() {
		t.Logf("cleanup:\n%s", cleanup)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{name: "required flags, all reported", args: nil, want: []string{"--cluster is required", "--region is required", "--bucket is required"}},
		{name: "unknown flag", args: []string{"--clustr", "x"}, want: []string{"unknown argument: --clustr"}},
		{name: "missing value", args: []string{"--cluster"}, want: []string{"--cluster needs a value"}},
		{name: "bad names", args: []string{"--cluster", "c", "--region", "r", "--bucket", "B_", "--namespace", "Prod", "--role-name", "a b"},
			want: []string{`--namespace "Prod"`, `--role-name "a b"`, `--bucket "B_"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runScript(t, map[string]string{"aws": forbidden, "kubectl": forbidden}, nil, tc.args...)
			if r.Code != 2 {
				t.Errorf("exit code %d, want 2", r.Code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
				}
			}
			if len(r.Calls) > 0 {
				t.Errorf("called: %q", r.Calls)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := runScript(t, nil, nil, "--help")
	if r.Code != 0 || !strings.Contains(r.Stdout, "Usage: test/e2e/eks/run.sh") || !strings.Contains(r.Stdout, "--dry-run") {
		t.Errorf("exit %d, stdout:\n%s", r.Code, r.Stdout)
	}
}
