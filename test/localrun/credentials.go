package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/podcreds"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// doctorTimeout bounds one `irsa-webhook doctor` run of the debugging section.
const doctorTimeout = time.Minute

// startIAM runs the local IAM and STS endpoint in this process with the walkthrough's step 1
// and 3 done: the role S3WriterRole with its trust policy, and the cluster's issuer registered
// (CreateOpenIDConnectProvider, client ID sts.amazonaws.com), its keys fetched from the
// kube-apiserver (podcreds.PublishIssuer).
func (d *demo) startIAM(ctx context.Context, roleARN, trustPolicy string) error {
	d.iam = iamserver.New()
	d.iam.PutRole(roleARN, trustPolicy)
	if err := d.registerIssuer(ctx); err != nil {
		return err
	}
	return podcreds.PublishIssuer(ctx, d.cs, d.iam, issuer, d.cp.Host(), d.cp.CACertPEM())
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

// callerIdentity is the walkthrough's `aws sts get-caller-identity` in the pod, against the
// local STS (podcreds.CallerIdentity).
func (d *demo) callerIdentity(ctx context.Context, pod *corev1.Pod, root string) (*sts.GetCallerIdentityOutput, error) {
	return podcreds.CallerIdentity(ctx, d.cs, pod, root, d.iam.URL())
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
