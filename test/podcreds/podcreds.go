// Package podcreds does what an application in a pod does to get AWS credentials through
// IRSA, on the test's machine instead of a node: the token the kubelet would project for the
// pod (a TokenRequest with the webhook's volume's audience and lifetime, bound to the pod) is
// written under a temporary root, and aws-sdk-go-v2's default credential chain runs with
// exactly the environment the webhook gave the pod's container, but for two variables: the
// token path, re-rooted under that root, and AWS_ENDPOINT_URL_STS, a local STS
// (test/iamserver). `make run` (test/localrun) and the end-to-end tests share it.
package podcreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

const (
	// publishTimeout bounds the wait until the API server serves its issuer's discovery
	// document to anonymous clients.
	publishTimeout = time.Minute
	pollEvery      = 100 * time.Millisecond
	// discoveryBinding makes the issuer's documents public, as an issuer STS reads must be.
	discoveryBinding = "irsa-test-public-oidc-discovery"
)

// TokenSource is the webhook's projected token of the pod, or nil.
func TokenSource(p *corev1.Pod) *corev1.ServiceAccountTokenProjection {
	for _, v := range p.Spec.Volumes {
		if v.Name == irsa.VolumeName && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil {
					return s.ServiceAccountToken
				}
			}
		}
	}
	return nil
}

// Token asks for the token the kubelet projects into the pod's IRSA volume: a TokenRequest for
// the pod's ServiceAccount with the volume's audience and lifetime, bound to the pod.
func Token(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) (string, error) {
	src := TokenSource(pod)
	if src == nil {
		return "", fmt.Errorf("pod %s/%s has no %s token volume", pod.Namespace, pod.Name, irsa.VolumeName)
	}
	tr, err := cs.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{src.Audience},
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request the token of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return tr.Status.Token, nil
}

// Env is the environment the pod's SDK reads: the plain variables of its first container.
func Env(pod *corev1.Pod) map[string]string {
	env := map[string]string{}
	if len(pod.Spec.Containers) > 0 {
		for _, e := range pod.Spec.Containers[0].Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			}
		}
	}
	return env
}

// CallerIdentity is `aws sts get-caller-identity` in the pod: it writes the pod's token (Token)
// under root at the path the webhook injected, then calls GetCallerIdentity with the SDK's
// default credential chain configured by the pod's environment (Env), the token path
// re-rooted and AWS_ENDPOINT_URL_STS=stsURL. Nothing else reaches the SDK: every AWS_*
// variable of this process is unset meanwhile, and no shared config file, no instance
// metadata is read. A pod without AWS_WEB_IDENTITY_TOKEN_FILE gets no token, as on a node.
func CallerIdentity(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, root, stsURL string) (*sts.GetCallerIdentityOutput, error) {
	env := Env(pod)
	if path, ok := env[irsa.EnvWebIdentityTokenFile]; ok {
		token, err := Token(ctx, cs, pod)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(root, pod.Namespace, pod.Name, path)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, fmt.Errorf("create the token's directory: %w", err)
		}
		if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
			return nil, fmt.Errorf("write the pod's token: %w", err)
		}
		env[irsa.EnvWebIdentityTokenFile] = file
	}
	env["AWS_ENDPOINT_URL_STS"] = stsURL
	return callerIdentity(ctx, env)
}

// envMu serialises the SDK runs of this process: each sets the process's AWS_* variables.
var envMu sync.Mutex

func callerIdentity(ctx context.Context, env map[string]string) (*sts.GetCallerIdentityOutput, error) {
	envMu.Lock()
	defer envMu.Unlock()
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

// ErrorCode is the AWS error code of err, or "" when the SDK got no answer from AWS.
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// ErrorMessage is the AWS error message of err, or "".
func ErrorMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// PublishIssuer lets srv's STS verify the cluster's tokens: STS fetches the issuer's discovery
// document and keys anonymously, as AWS does, so the issuer-discovery ClusterRole is bound to
// unauthenticated clients (as a public issuer needs), and, since the issuer's host does not
// resolve, srv fetches them from the API server at host (https://HOST:PORT, serving
// certificate from the CA bundle caPEM). It returns once an anonymous client gets the
// discovery document: the API server's authorizer sees the binding through an informer.
func PublishIssuer(ctx context.Context, cs kubernetes.Interface, srv *iamserver.Server, issuer, host string, caPEM []byte) error {
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: discoveryBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:unauthenticated"}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("make the issuer's discovery document public: %w", err)
	}
	ep, err := iamserver.APIServerEndpoint(host, caPEM)
	if err != nil {
		return err
	}
	srv.SetIssuerEndpoint(issuer, ep)
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.DiscoveryURL, nil)
		if err != nil {
			return fmt.Errorf("get %s: %w", ep.DiscoveryURL, err)
		}
		resp, err := ep.Client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
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
