package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/podcreds"
	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
)

// unannotatedSA is a ServiceAccount of the production namespace without a role (the
// walkthrough's "my-api"): its pods are the NoCredentialProviders case.
const unannotatedSA = "my-api"

// exchange is one pod's `aws sts get-caller-identity`: the answer, or the error with the
// doctor's verdict on the pod.
type exchange struct {
	title  string // the walkthrough's name of the failure
	cause  string
	pod    *corev1.Pod
	id     *sts.GetCallerIdentityOutput
	err    error
	doctor []doctor.Check
}

// exchanges runs step 6 for the example pod, then the walkthrough's three debugging cases
// live, each followed by `irsa-webhook doctor` on the failing pod.
func (d *demo) exchanges(ctx context.Context, r *applied) (step6 exchange, failures []exchange, err error) {
	root := filepath.Join(d.dir, "kubelet")
	step6 = exchange{pod: r.pod}
	if step6.id, step6.err = d.callerIdentity(ctx, r.pod, root); step6.err != nil {
		return step6, nil, fmt.Errorf("step 6: GetCallerIdentity from pod %s/%s: %w", r.pod.Namespace, r.pod.Name, step6.err)
	}

	// AccessDenied: the ServiceAccount the trust check warned about runs a pod.
	staging, err := d.createPod(ctx, r.template, r.mistake.Namespace, r.deploy, r.template.Spec.ServiceAccountName)
	if err != nil {
		return step6, nil, err
	}
	denied := exchange{title: "AccessDenied", pod: staging,
		cause: fmt.Sprintf("ServiceAccount %s/%s, which the role does not trust (the trust check's warning above)", staging.Namespace, staging.Spec.ServiceAccountName)}

	// InvalidIdentityToken: the cluster's issuer is not an IAM OIDC provider of the role's
	// account (step 1 skipped, or the role's account is another one).
	unknown := exchange{title: "InvalidIdentityToken", pod: r.pod,
		cause: fmt.Sprintf("the same production pod after `aws iam delete-open-id-connect-provider` of the cluster's issuer %s", issuer)}

	// NoCredentialProviders: a pod that does not use the annotated ServiceAccount.
	if _, err := d.cs.CoreV1().ServiceAccounts(r.pod.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: unannotatedSA}}, metav1.CreateOptions{}); err != nil {
		return step6, nil, fmt.Errorf("create serviceaccount %s/%s: %w", r.pod.Namespace, unannotatedSA, err)
	}
	plain, err := d.createPod(ctx, r.template, r.pod.Namespace, r.deploy, unannotatedSA)
	if err != nil {
		return step6, nil, err
	}
	none := exchange{title: "NoCredentialProviders", pod: plain,
		cause: fmt.Sprintf("pod %s/%s runs as serviceAccountName %s, which names no role", plain.Namespace, plain.Name, unannotatedSA)}

	for _, x := range []*exchange{&denied, &unknown, &none} {
		if x == &unknown {
			d.iam.DeleteOIDCProvider(iamserver.CallerAccount, issuer)
		}
		x.id, x.err = d.callerIdentity(ctx, x.pod, root)
		var derr error
		x.doctor, derr = d.runDoctor(ctx, x.pod)
		if x == &unknown {
			if err := d.registerIssuer(ctx); err != nil {
				return step6, nil, err
			}
		}
		if derr != nil {
			return step6, nil, derr
		}
		if x.err == nil {
			return step6, nil, fmt.Errorf("%s: pod %s/%s got credentials for %s", x.title, x.pod.Namespace, x.pod.Name, *x.id.Arn)
		}
		failures = append(failures, *x)
	}
	return step6, failures, nil
}

// createPod creates what the Deployment's ReplicaSet would, in namespace ns and running as sa.
func (d *demo) createPod(ctx context.Context, template *corev1.PodTemplateSpec, ns, deploy, sa string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: deploy + "-", Namespace: ns, Labels: template.Labels, Annotations: template.Annotations},
		Spec:       *template.Spec.DeepCopy(),
	}
	pod.Spec.ServiceAccountName = sa
	created, err := d.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create a pod of deployment %s in namespace %s as serviceaccount %s: %w", deploy, ns, sa, err)
	}
	return created, nil
}

// reportExchanges prints step 6's answer and the debugging section.
func (d *demo) reportExchanges(r *applied, step6 exchange, failures []exchange) {
	var b strings.Builder
	p := step6.pod
	fmt.Fprintf(&b, "\n  `aws sts get-caller-identity` in the pod: aws-sdk-go-v2's default credential chain with the\n")
	fmt.Fprintf(&b, "  container's environment above, the token written under %s,\n", filepath.Join(d.dir, "kubelet"))
	fmt.Fprintf(&b, "  and AWS_ENDPOINT_URL_STS=%s (the local STS, which verifies the token against the\n", d.iam.URL())
	fmt.Fprintf(&b, "  cluster's JWKS, the IAM OIDC provider of step 1 and the trust policy of step 3), answers for pod %s/%s:\n", p.Namespace, p.Name)
	printIdentity(&b, step6.id)

	fmt.Fprintf(&b, "\nDebugging, caught at apply time: the same ServiceAccount created in namespace %q gets, from the trust check,\n", r.mistake.Namespace)
	for _, w := range r.mistakeWarnings {
		fmt.Fprintf(&b, "  Warning: %s\n", w)
	}
	fmt.Fprintf(&b, "  (`--trust-check=enforce` refuses it instead)\n")
	fmt.Fprintf(&b, "\nDebugging, live: the same call from other pods, each with `irsa-webhook doctor pod NAME -n NS`'s verdict\n")
	for _, x := range failures {
		fmt.Fprintf(&b, "\n  %s: %s\n", x.title, x.cause)
		code, msg := podcreds.ErrorCode(x.err), podcreds.ErrorMessage(x.err)
		if code != "" {
			fmt.Fprintf(&b, "    SDK: %s from sts:AssumeRoleWithWebIdentity: %s\n", code, msg)
		} else {
			env := "no AWS_ROLE_ARN or AWS_WEB_IDENTITY_TOKEN_FILE in the pod: the webhook had no role to inject"
			if hasEnv(x.pod, "AWS_ROLE_ARN") {
				env = "the pod has AWS_ROLE_ARN"
			}
			fmt.Fprintf(&b, "    SDK: no credentials (%s): %v\n", env, x.err)
		}
		for _, c := range x.doctor {
			fmt.Fprintf(&b, "    doctor: %s %s  %s\n", c.Status.Symbol(), c.Name, c.Message)
			if c.Fix != "" {
				fmt.Fprintf(&b, "            fix: %s\n", c.Fix)
			}
		}
	}
	fmt.Fprint(d.out, b.String())
}

// hasEnv says whether the pod's first container has the variable.
func hasEnv(p *corev1.Pod, name string) bool {
	if len(p.Spec.Containers) == 0 {
		return false
	}
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return true
		}
	}
	return false
}
