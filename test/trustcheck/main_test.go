// Package trustcheck_test runs the ServiceAccount trust check end to end: the irsa-webhook
// binary against a real kube-apiserver + etcd, asking a local IAM endpoint through the real
// AWS SDK (AWS_ENDPOINT_URL), with the cluster's issuer discovered from the API server.
//
// Two webhook processes run: one in warn mode, one in enforce mode; a namespace label
// chooses which one the API server calls. TestCredentialChain also registers the warn
// process as the pod webhook of its namespaces and lets the local endpoint's STS verify the
// cluster's tokens: what the trust check said at apply time is compared with STS's answer
// to the pod's SDK.
package trustcheck_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/harness"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	testIssuer = "https://oidc.irsa-trustcheck.test/id/TRUSTCHECK"
	// trustedRole trusts exactly system:serviceaccount:team-a:app (audience sts.amazonaws.com).
	trustedRole = "arn:aws:iam::123456789012:role/AppRole"
	modeLabel   = "irsa-trustcheck.test/mode"
	// checkTimeout is the webhooks' --trust-check-timeout.
	checkTimeout = 2 * time.Second
	setupTimeout = 3 * time.Minute
)

var suite struct {
	h        *harness.Suite
	cp       *controlplane.ControlPlane
	cs       *kubernetes.Clientset
	iam      *iamserver.Server
	dir      string
	binary   string
	webhooks map[string]*webhookproc.Process // by mode
	tls      webhookproc.TLS                 // their serving certificate
	awsEnv   []string                        // the AWS SDK's configuration for the local IAM endpoint
}

// minimal is the policy `irsa-webhook trust policy` writes for role and ns/name on this cluster.
func minimal(role, ns, name string) string {
	doc, err := trustpolicy.Minimal(trustpolicy.Request{RoleARN: role, IssuerURL: testIssuer, Namespace: ns, ServiceAccount: name, Audience: "sts.amazonaws.com"})
	if err != nil {
		panic(err)
	}
	return doc
}

func TestMain(m *testing.M) {
	os.Exit(harness.Main(harness.Options{Name: "trustcheck", ControlPlane: controlplane.Options{IssuerURL: testIssuer}}, func(s *harness.Suite) int {
		suite.h, suite.cp, suite.cs, suite.dir, suite.binary = s, s.CP, s.Admin, s.Dir, s.Binary
		suite.iam = iamserver.New()
		defer suite.iam.Close()
		suite.iam.PutRole(trustedRole, minimal(trustedRole, "team-a", "app"))
		suite.webhooks = map[string]*webhookproc.Process{}
		defer func() {
			for _, p := range suite.webhooks {
				_ = p.Stop()
			}
		}()
		if err := setUp(); err != nil {
			s.Logf("set up: %v", err)
			for mode, p := range suite.webhooks {
				s.Logf("%s webhook log:\n%s", mode, p.LogTail())
			}
			return 1
		}
		return m.Run()
	}))
}

func setUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	tls, err := webhookproc.WriteServingCert(suite.dir, time.Now())
	if err != nil {
		return err
	}
	suite.tls = tls
	// The real SDK, configured as users configure it: endpoint and credentials in the env.
	suite.awsEnv = suite.iam.ClientEnv(suite.dir, iamserver.DefaultAccessKeyID, iamserver.DefaultSecretAccessKey)
	for _, mode := range []string{"warn", "enforce"} {
		p, err := webhookproc.Start(webhookproc.Options{
			Binary: suite.binary, Kubeconfig: suite.cp.KubeconfigPath(), TLS: tls,
			LogPath: filepath.Join(suite.dir, mode+".log"), Env: suite.awsEnv,
			// No --oidc-issuer-url: the issuer is discovered from the API server.
			Args: append([]string{"--trust-check=" + mode, "--trust-check-timeout=" + checkTimeout.String(), "--log-level=debug"}, mappingArgs(mode)...),
		})
		if err != nil {
			return err
		}
		suite.webhooks[mode] = p
		if err := p.WaitReady(ctx, time.Minute); err != nil {
			return err
		}
		cfg := webhookproc.ServiceAccountWebhookConfiguration("irsa-trustcheck-"+mode, p.URL(webhookproc.ServiceAccountPath), tls.CAPEM, admissionregistrationv1.Fail)
		cfg.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{modeLabel: mode}}
		if _, err := suite.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("register %s webhook: %w", mode, err)
		}
	}
	// Wait until the API server calls both (a ServiceAccount its role does not trust warns).
	for _, mode := range []string{"warn", "enforce"} {
		ns := namespace(ctx, nil, mode, "probe-"+mode)
		if err := waitCalled(ctx, ns); err != nil {
			return fmt.Errorf("%s webhook: %w", mode, err)
		}
	}
	return nil
}
