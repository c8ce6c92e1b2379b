package iamserver_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
)

// clusterIssuer is the test control plane's service-account issuer: like EKS's, it is not
// the apiserver's address (and does not resolve).
const clusterIssuer = "https://oidc.irsa-iamserver.test/id/STS"

// cluster is a control plane started by the first test that needs one; the other tests of
// this package run without it.
var cluster struct {
	once sync.Once
	cp   *controlplane.ControlPlane
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster.cp != nil {
		if err := cluster.cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

func controlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	cluster.once.Do(func() {
		cluster.cp, cluster.err = controlplane.Start(context.Background(), controlplane.Options{IssuerURL: clusterIssuer})
	})
	if cluster.err != nil {
		t.Fatal(cluster.err)
	}
	return cluster.cp
}

// waitAnonymousDiscovery polls until the apiserver serves the discovery document to an
// anonymous client: its RBAC authorizer sees a new binding through an informer.
func waitAnonymousDiscovery(t *testing.T, e iamserver.IssuerEndpoint) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := e.Client.Get(e.DiscoveryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("anonymous GET %s: %v", e.DiscoveryURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sdkEnv configures aws-sdk-go-v2's default credential chain the way the webhook configures
// a pod (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), with STS at srv, and nothing else it
// could find credentials in. One attempt per call: the SDK retries InvalidIdentityToken.
func sdkEnv(t *testing.T, srv *iamserver.Server, role, token string) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ROLE_ARN": role, "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile, "AWS_ROLE_SESSION_NAME": "",
		"AWS_ENDPOINT_URL_STS": srv.URL(), "AWS_ENDPOINT_URL": "", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1",
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "no-config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "no-credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
}

// TestWebIdentityFromTheCluster exchanges real kube-apiserver tokens through aws-sdk-go-v2's
// default credential chain, as an SDK in a pod does, and checks the answer of every failure
// of the walkthrough's debugging section.
func TestWebIdentityFromTheCluster(t *testing.T) {
	cp := controlPlane(t)
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(cp.Config())
	if err != nil {
		t.Fatal(err)
	}
	// STS fetches the discovery document and keys without credentials; Kubernetes serves them
	// to anonymous clients once the issuer-discovery role is bound to them.
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "iamserver-public-oidc-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:unauthenticated"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// STS finds the cluster's discovery document and keys on the apiserver (the issuer's
	// host does not resolve), over HTTPS with its CA.
	endpoint, err := iamserver.APIServerEndpoint(cp.Host(), cp.CACertPEM())
	if err != nil {
		t.Fatal(err)
	}
	waitAnonymousDiscovery(t, endpoint)
	for _, ns := range []string{"production", "staging"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "s3-writer"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	token := func(ns, audience string) string {
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "s3-writer", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{audience}, ExpirationSeconds: aws.Int64(3600),
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("request a token for %s/s3-writer: %v", ns, err)
		}
		return tr.Status.Token
	}

	srv := iamserver.New()
	defer srv.Close()
	const role = "arn:aws:iam::123456789012:role/S3WriterRole"
	const otherAccountRole = "arn:aws:iam::210987654321:role/OtherAccountRole"
	srv.PutRole(role, minimalPolicy(t, role, clusterIssuer, "production", "s3-writer"))
	srv.PutRole(otherAccountRole, minimalPolicy(t, otherAccountRole, clusterIssuer, "production", "s3-writer"))
	srv.SetIssuerEndpoint(clusterIssuer, endpoint)
	// The cluster's issuer is registered in 123456789012 (only) through the IAM API.
	if _, err := newIAMClient(srv, iamserver.DefaultAccessKeyID).CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(clusterIssuer), ClientIDList: []string{controlplane.AudienceSTS},
	}); err != nil {
		t.Fatal(err)
	}

	production := token("production", controlplane.AudienceSTS)
	tests := []struct {
		name     string
		role     string
		token    string
		later    time.Duration // the STS clock runs this far ahead
		wantCode string
		wantMsg  string
	}{
		{name: "production's token for the role that trusts it", role: role, token: production},
		{name: "staging's token: the trust policy names production", role: role, token: token("staging", controlplane.AudienceSTS),
			wantCode: "AccessDenied", wantMsg: "Not authorized to perform sts:AssumeRoleWithWebIdentity"},
		{name: "token for another audience", role: role, token: token("production", controlplane.AudienceKubernetes),
			wantCode: "InvalidIdentityToken", wantMsg: "Incorrect token audience"},
		{name: "issuer not registered in the role's account", role: otherAccountRole, token: production,
			wantCode: "InvalidIdentityToken", wantMsg: "No OpenIDConnect provider found in your account for " + clusterIssuer},
		{name: "expired token", role: role, token: production, later: 2 * time.Hour,
			wantCode: "ExpiredTokenException", wantMsg: "Token expired"},
		{name: "tampered signature", role: role, token: tamper(production), wantCode: "InvalidIdentityToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sdkEnv(t, srv, tt.role, tt.token)
			if tt.later != 0 {
				srv.SetClock(func() time.Time { return time.Now().Add(tt.later) })
				defer srv.SetClock(time.Now)
			}
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if tt.wantCode != "" {
				if code, _ := apiError(err); code != tt.wantCode || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("GetCallerIdentity: %v (code %q), want %s containing %q", err, code, tt.wantCode, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetCallerIdentity: %v", err)
			}
			arn, userID := aws.ToString(out.Arn), aws.ToString(out.UserId)
			session, ok := strings.CutPrefix(arn, "arn:aws:sts::123456789012:assumed-role/S3WriterRole/")
			if !ok || session == "" || aws.ToString(out.Account) != "123456789012" {
				t.Errorf("GetCallerIdentity Arn %q Account %q, want the assumed-role ARN of S3WriterRole", arn, aws.ToString(out.Account))
			}
			if !strings.HasPrefix(userID, "AROA") || !strings.HasSuffix(userID, ":"+session) {
				t.Errorf("UserId %q, want AROA...:%s", userID, session)
			}
			t.Logf("GetCallerIdentity: Account %s, Arn %s, UserId %s", aws.ToString(out.Account), arn, userID)
		})
	}
}
