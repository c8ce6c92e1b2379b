package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// doctorTimeout bounds one `irsa-webhook doctor` run of the debugging section.
const doctorTimeout = time.Minute

// startIAM runs the local IAM and STS endpoint in this process with the walkthrough's step 1
// and 3 done: the role S3WriterRole with its trust policy, and the cluster's issuer registered
// (CreateOpenIDConnectProvider, client ID sts.amazonaws.com). STS fetches the issuer's
// discovery document and keys from the kube-apiserver, anonymously as AWS does, so the
// issuer-discovery ClusterRole is bound to unauthenticated clients, as a public issuer needs.
func (d *demo) startIAM(ctx context.Context, roleARN, trustPolicy string) error {
	d.iam = iamserver.New()
	d.iam.PutRole(roleARN, trustPolicy)
	if err := d.registerIssuer(ctx); err != nil {
		return err
	}
	if _, err := d.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "localrun-public-oidc-discovery"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:unauthenticated"}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("make the issuer's discovery document public: %w", err)
	}
	ep, err := iamserver.APIServerEndpoint(d.cp.Host(), d.cp.CACertPEM())
	if err != nil {
		return err
	}
	d.iam.SetIssuerEndpoint(issuer, ep)
	// The apiserver's authorizer sees the new binding through an informer: poll until an
	// anonymous client gets the discovery document.
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.DiscoveryURL, nil)
		if err != nil {
			return fmt.Errorf("get %s: %w", ep.DiscoveryURL, err)
		}
		resp, err := ep.Client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("anonymous GET %s: %w", ep.DiscoveryURL, err)
		case <-time.After(pollEvery):
		}
	}
}

// registerIssuer is the walkthrough's step 1, `aws iam create-open-id-connect-provider`,
// against the local IAM endpoint.
func (d *demo) registerIssuer(ctx context.Context) error {
	client := iam.New(iam.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(d.iam.URL()), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(iamserver.DefaultAccessKeyID, iamserver.DefaultSecretAccessKey, ""),
	})
	if _, err := client.CreateOpenIDConnectProvider(ctx, &iam.CreateOpenIDConnectProviderInput{
		Url: aws.String(issuer), ClientIDList: []string{irsa.DefaultTokenAudience},
	}); err != nil {
		return fmt.Errorf("register the cluster's issuer as an IAM OIDC provider: %w", err)
	}
	return nil
}

// callerIdentity is the walkthrough's `aws sts get-caller-identity` in the pod: it writes the
// token the kubelet would project for pod (a TokenRequest with the webhook's volume's audience
// and lifetime, bound to the pod) under root, then runs aws-sdk-go-v2's default credential
// chain with exactly the variables of the pod's first container, but for two: the token path,
// re-rooted under root, and AWS_ENDPOINT_URL_STS, the local STS. Nothing else reaches the SDK:
// every AWS_* variable of this process is unset meanwhile, and no shared config file, no
// instance metadata is read.
func (d *demo) callerIdentity(ctx context.Context, pod *corev1.Pod, root string) (*sts.GetCallerIdentityOutput, error) {
	env := map[string]string{}
	if len(pod.Spec.Containers) > 0 {
		for _, e := range pod.Spec.Containers[0].Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			}
		}
	}
	if path, ok := env["AWS_WEB_IDENTITY_TOKEN_FILE"]; ok {
		src := tokenSource(pod)
		if src == nil {
			return nil, fmt.Errorf("pod %s/%s has %s but no token volume", pod.Namespace, pod.Name, "AWS_WEB_IDENTITY_TOKEN_FILE")
		}
		tr, err := d.cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{src.Audience},
			ExpirationSeconds: src.ExpirationSeconds,
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("request the token of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		file := filepath.Join(root, pod.Namespace, pod.Name, path)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, fmt.Errorf("create the token's directory: %w", err)
		}
		if err := os.WriteFile(file, []byte(tr.Status.Token), 0o600); err != nil {
			return nil, fmt.Errorf("write the pod's token: %w", err)
		}
		env["AWS_WEB_IDENTITY_TOKEN_FILE"] = file
	}
	env["AWS_ENDPOINT_URL_STS"] = d.iam.URL()

	restore := onlyAWSEnv(env)
	defer restore()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		config.WithRetryMaxAttempts(1), // the SDK retries InvalidIdentityToken; one answer is enough here
	)
	if err != nil {
		return nil, fmt.Errorf("load the SDK's default configuration: %w", err)
	}
	return sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
}

// onlyAWSEnv unsets every AWS_* variable of this process and sets env; restore puts the
// process's environment back. The SDK reads its environment with os.Getenv and offers no
// other source, hence this.
func onlyAWSEnv(env map[string]string) (restore func()) {
	saved := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			saved[k] = v
			_ = os.Unsetenv(k)
		}
	}
	for k, v := range env {
		_ = os.Setenv(k, v)
	}
	return func() {
		for k := range env {
			_ = os.Unsetenv(k)
		}
		for k, v := range saved {
			_ = os.Setenv(k, v)
		}
	}
}

// printIdentity prints GetCallerIdentity's answer as `aws sts get-caller-identity` does.
func printIdentity(out *strings.Builder, id *sts.GetCallerIdentityOutput) {
	b, _ := json.MarshalIndent(struct {
		UserID  string `json:"UserId"`
		Account string `json:"Account"`
		Arn     string `json:"Arn"`
	}{aws.ToString(id.UserId), aws.ToString(id.Account), aws.ToString(id.Arn)}, "    ", "    ")
	fmt.Fprintf(out, "    %s\n", b)
}

// errorCode is the AWS error code of err, or "" when the SDK got no answer from AWS.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// runDoctor runs `irsa-webhook doctor pod NAME -n NS` as an admin would, with the demo's
// kubeconfig and the local IAM endpoint's credentials, and returns its failed checks (✗).
func (d *demo) runDoctor(ctx context.Context, pod *corev1.Pod) ([]doctor.Check, error) {
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.binary, "doctor", "--kubeconfig", d.cp.KubeconfigPath(), "-o", "json", "pod", pod.Name, "-n", pod.Namespace)
	home := filepath.Join(d.dir, "doctor-home")
	cmd.Env = []string{
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=" + d.iam.URL(),
		"AWS_ACCESS_KEY_ID=" + iamserver.DefaultAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + iamserver.DefaultSecretAccessKey,
		"AWS_REGION=us-east-1",
		"AWS_MAX_ATTEMPTS=1",
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, fmt.Errorf("run irsa-webhook doctor: %w", err)
	}
	var r doctor.Report
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		return nil, fmt.Errorf("irsa-webhook doctor pod %s -n %s: %w (%s)", pod.Name, pod.Namespace, err, strings.TrimSpace(stderr.String()))
	}
	var bad []doctor.Check
	for _, c := range r.Checks {
		if c.Status == doctor.Fail {
			bad = append(bad, c)
		}
	}
	return bad, nil
}
