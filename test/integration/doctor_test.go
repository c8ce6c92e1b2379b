package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// The walkthrough's names: the role S3WriterRole trusts ServiceAccount s3-writer of namespace
// production, and may write to my-app-uploads.
const (
	doctorSA       = "s3-writer"
	uploadsBucket  = "arn:aws:s3:::my-app-uploads/*"
	uploadsPolicy  = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::my-app-uploads/*"}]}`
	doctorDeadline = time.Minute
)

// doctorCase sets up one cluster state and one IAM state, runs irsa-webhook doctor as a
// user would (the binary, a kubeconfig file, AWS credentials from the environment) and
// checks the exit code and which checks fail.
type doctorCase struct {
	name string
	// setUp creates the objects in ns (a fresh namespace, unless it returns another) and
	// returns doctor's arguments after "doctor".
	setUp func(t *testing.T, cs kubernetes.Interface, ns string) (args []string, trustNamespace string)
	iam   func(srv *iamserver.Server)
	// wantFailed are the checks that must be ✗, exactly; wantFix is in the first one's fix.
	wantFailed []string
	wantFix    string
	wantCode   int
}

func TestDoctor(t *testing.T) {
	cs, _ := newClient(t)
	annotated := withRole(testRoleARN)
	podIn := func(t *testing.T, ns, name, sa string, labels map[string]string) {
		p := simplePod(name, sa)
		p.Labels = labels
		createPod(t, cs, ns, p)
	}
	standard := func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
		createServiceAccount(t, cs, ns, doctorSA, annotated)
		podIn(t, ns, "app", doctorSA, nil)
		return []string{"pod", "app", "-n", ns}, ns
	}
	tests := []doctorCase{
		{
			name: "all good",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				a, n := standard(t, cs, ns)
				return append(a, "--action", "s3:PutObject", "--resource", uploadsBucket), n
			},
			wantCode: 0,
		},
		{
			name: "webhook does not cover the namespace",
			setUp: func(t *testing.T, cs kubernetes.Interface, _ string) ([]string, string) {
				// The integration webhook's namespaceSelector leaves kube-system out.
				ns := "kube-system"
				name := "doctor-uncovered"
				createServiceAccount(t, cs, ns, doctorSA, annotated)
				podIn(t, ns, name, doctorSA, nil)
				t.Cleanup(func() {
					_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
					_ = cs.CoreV1().ServiceAccounts(ns).Delete(context.Background(), doctorSA, metav1.DeleteOptions{})
				})
				return []string{"pod", name, "-n", ns}, ns
			},
			wantFailed: []string{doctor.CheckWebhookCovers, doctor.CheckInjection}, wantFix: "namespaceSelector", wantCode: 1,
		},
		{
			name: "skip label",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				createServiceAccount(t, cs, ns, doctorSA, annotated)
				podIn(t, ns, "app", doctorSA, map[string]string{irsa.Key(irsa.DefaultAnnotationPrefix, irsa.SkipPodLabel): "true"})
				return []string{"pod", "app", "-n", ns}, ns
			},
			wantFailed: []string{doctor.CheckWebhookCovers, doctor.CheckInjection}, wantFix: "remove the label", wantCode: 1,
		},
		{
			name: "pod without the annotated ServiceAccount (NoCredentialProviders)",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				createServiceAccount(t, cs, ns, doctorSA, annotated)
				createServiceAccount(t, cs, ns, "my-api", nil)
				podIn(t, ns, "app", "my-api", nil)
				return []string{"pod", "app", "-n", ns}, ns
			},
			wantFailed: []string{doctor.CheckServiceAccount}, wantFix: "serviceAccountName to the ServiceAccount that names the role (s3-writer", wantCode: 1,
		},
		{
			name: "invalid role ARN",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				createServiceAccount(t, cs, ns, doctorSA, withRole("arn:aws:iam::1234:role/S3WriterRole"))
				return []string{"serviceaccount", doctorSA, "-n", ns}, ns
			},
			wantFailed: []string{doctor.CheckServiceAccount}, wantFix: "role ARN such as", wantCode: 1,
		},
		{
			name: "stale pod created before the annotation",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				createServiceAccount(t, cs, ns, doctorSA, nil)
				podIn(t, ns, "app", doctorSA, nil)
				annotate(t, cs, ns, doctorSA, testRoleARN)
				return []string{"pod", "app", "-n", ns}, ns
			},
			wantFailed: []string{doctor.CheckInjection}, wantFix: "restart it", wantCode: 1,
		},
		{
			name:       "issuer not registered as an OIDC provider (InvalidIdentityToken)",
			setUp:      standard,
			iam:        func(srv *iamserver.Server) { srv.DeleteOIDCProvider(iamserver.CallerAccount, testIssuer) },
			wantFailed: []string{doctor.CheckOIDCProvider}, wantFix: "aws iam create-open-id-connect-provider --url " + testIssuer, wantCode: 1,
		},
		{
			name:  "audience missing from the client IDs (InvalidIdentityToken)",
			setUp: standard,
			iam: func(srv *iamserver.Server) {
				srv.PutOIDCProvider(iamserver.CallerAccount, testIssuer, "other-audience")
			},
			wantFailed: []string{doctor.CheckAudience}, wantFix: "add-client-id-to-open-id-connect-provider", wantCode: 1,
		},
		{
			name: "trust policy for another namespace (staging, AccessDenied from STS)",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				args, _ := standard(t, cs, ns)
				return args, "production"
			},
			wantFailed: []string{doctor.CheckTrustPolicy}, wantFix: "irsa-webhook trust policy --role-arn " + testRoleARN, wantCode: 1,
		},
		{
			name: "action denied (AccessDenied from S3)",
			setUp: func(t *testing.T, cs kubernetes.Interface, ns string) ([]string, string) {
				a, n := standard(t, cs, ns)
				return append(a, "--action", "s3:DeleteBucket", "--resource", "arn:aws:s3:::my-app-uploads"), n
			},
			wantFailed: []string{doctor.CheckPermission}, wantFix: "put-role-policy --role-name S3WriterRole", wantCode: 1,
		},
		{
			name:     "IAM unreachable: unverifiable",
			setUp:    standard,
			iam:      func(srv *iamserver.Server) { srv.SetFault(iamserver.CodeServiceUnavailable) },
			wantCode: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t, cs, "doctor")
			args, trustNS := tc.setUp(t, cs, ns)
			srv := iamserver.New()
			t.Cleanup(srv.Close)
			policy, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: testRoleARN, IssuerURL: testIssuer, Namespace: trustNS, ServiceAccount: doctorSA, Audience: irsa.DefaultTokenAudience})
			if err != nil {
				t.Fatal(err)
			}
			srv.PutRole(testRoleARN, policy)
			srv.PutRolePolicy("S3WriterRole", "uploads", uploadsPolicy)
			srv.PutOIDCProvider(iamserver.CallerAccount, testIssuer, irsa.DefaultTokenAudience)
			if tc.iam != nil {
				tc.iam(srv)
			}
			text, _ := runDoctorBinary(t, srv, args)
			t.Logf("irsa-webhook doctor %s\n%s", strings.Join(args, " "), text)
			out, code := runDoctorBinary(t, srv, append(args, "-o", "json"))
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			var r doctor.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("decode doctor's JSON: %v\n%s", err, out)
			}
			var failed []string
			var firstFix string
			for _, c := range r.Checks {
				if c.Status == doctor.Fail {
					if firstFix == "" {
						firstFix = c.Fix
					}
					failed = append(failed, c.Name)
				}
				if c.Status == doctor.Unknown && tc.wantCode == 0 {
					t.Errorf("check %s unverified: %s", c.Name, c.Message)
				}
			}
			if !slices.Equal(failed, tc.wantFailed) {
				t.Errorf("failed checks %q, want %q", failed, tc.wantFailed)
			}
			if !strings.Contains(firstFix, tc.wantFix) {
				t.Errorf("fix %q does not contain %q", firstFix, tc.wantFix)
			}
		})
	}
}

func annotate(t *testing.T, cs kubernetes.Interface, ns, name, role string) {
	t.Helper()
	// A merge patch, as kubectl annotate sends.
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": withRole(role)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Patch(t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-annotate"}); err != nil {
		t.Fatalf("annotate serviceaccount %s/%s: %v", ns, name, err)
	}
}

// runDoctorBinary runs the built binary with AWS credentials and endpoint from the
// environment only (no shared files, no instance metadata).
func runDoctorBinary(t *testing.T, srv *iamserver.Server, args []string) (string, int) {
	t.Helper()
	env := append(srv.ClientEnv(t.TempDir(), iamserver.DefaultAccessKeyID, iamserver.DefaultSecretAccessKey), "AWS_MAX_ATTEMPTS=1")
	return suite.h.RunBinary(t, doctorDeadline, env, append([]string{"doctor", "--kubeconfig", suite.cp.KubeconfigPath(), "--timeout", "5s"}, args...)...)
}

// TestTrustAuditStalePods: trust audit lists the running pods whose ServiceAccount names
// another role than the one they were created with (or a role when they got none), with
// "restart", and exits 1; a pod created after the change is not listed.
func TestTrustAuditStalePods(t *testing.T) {
	cs, _ := newClient(t)
	ns := newNamespace(t, cs, "stale")
	const newRole = "arn:aws:iam::123456789012:role/S3WriterRoleV2"
	createServiceAccount(t, cs, ns, "late", nil)
	createPod(t, cs, ns, simplePod("before-annotation", "late"))
	createServiceAccount(t, cs, ns, "moved", withRole(testRoleARN))
	createPod(t, cs, ns, simplePod("old-role", "moved"))
	// Creation and managedFields times have a resolution of one second: let the clock pass
	// the pods' second before the ServiceAccounts change.
	created := time.Now().Truncate(time.Second)
	for time.Now().Truncate(time.Second).Equal(created) {
		time.Sleep(pollEvery)
	}
	annotate(t, cs, ns, "late", testRoleARN)
	annotate(t, cs, ns, "moved", newRole)
	createPod(t, cs, ns, simplePod("fresh", "moved"))

	ctx, cancel := context.WithTimeout(t.Context(), doctorDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, suite.binary, "trust", "audit", "--kubeconfig", suite.cp.KubeconfigPath(), "--trust-policy-dir", t.TempDir(), "-o", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("trust audit: %v (want exit 1)\n%s\n%s", err, out, stderr.String())
	}
	var rows []struct {
		Namespace, ServiceAccount string
		StalePods                 []doctor.StalePod
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	got := map[string]string{}
	for _, r := range rows {
		for _, p := range r.StalePods {
			if p.Namespace == ns {
				got[p.Name] = p.ServiceAccount + " " + p.Action + " " + p.InjectedRoleARN + " -> " + p.CurrentRoleARN
			}
		}
	}
	want := map[string]string{
		"before-annotation": "late restart  -> " + testRoleARN,
		"old-role":          "moved restart " + testRoleARN + " -> " + newRole,
	}
	if !maps.Equal(got, want) {
		t.Errorf("stale pods in %s:\n got %v\nwant %v", ns, got, want)
	}
	text, _ := exec.CommandContext(ctx, suite.binary, "trust", "audit", "--kubeconfig", suite.cp.KubeconfigPath(), "--trust-policy-dir", t.TempDir()).Output()
	t.Logf("irsa-webhook trust audit\n%s", text)
}
