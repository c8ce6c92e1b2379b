// Command localrun is `make run`: it shows what irsa-webhook does to the walkthrough's
// Deployment (deploy/examples/) on a local default, with no AWS account and no cluster.
//
// It starts a real etcd and kube-apiserver on loopback (building them on first use), builds
// irsa-webhook and runs `irsa-webhook serve` as a child process with a self-signed serving
// certificate, registers it, applies the example Namespace and ServiceAccount, creates a Pod
// from the Deployment's pod template (no controller-manager runs, so nothing else would), and
// prints what the pod's containers see: the injected variables, the token volume and mount,
// and the claims of the token the kubelet would project. Then it keeps the cluster running for
// kubectl until Ctrl-C (or exits at once with --exit), and removes everything it started.
//
// Run it from the repository: go run ./test/localrun [--exit]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/irsa-webhook/irsa-webhook/test/controlplane"
	"github.com/irsa-webhook/irsa-webhook/test/iamserver"
	"github.com/irsa-webhook/irsa-webhook/test/jwtclaims"
	"github.com/irsa-webhook/irsa-webhook/test/podcreds"
	"github.com/irsa-webhook/irsa-webhook/test/webhookproc"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

const (
	// issuer looks like an EKS cluster's OIDC issuer; nothing needs to resolve it locally.
	issuer        = "https://oidc.eks.local-demo.irsa-webhook.test/id/LOCALDEMO"
	examplesDir   = "deploy/examples"
	webhookConfig = "irsa-webhook"
	// exitEnv set to anything non-empty does what --exit does.
	exitEnv = "IRSA_LOCALRUN_EXIT"

	slowBinariesAfter = 2 * time.Second // then say that the first run builds the control plane
	readyTimeout      = time.Minute
	pollEvery         = 100 * time.Millisecond
)

// webhookArgs are the serve flags of the demo beyond webhookproc's standard ones (the
// trust check's are added in start, since they name a temporary directory). The
// ServiceAccount trust check is off: it would ask AWS IAM about the role, and this demo has no
// AWS account (nor should it use the caller's AWS credentials).
var webhookArgs = []string{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "localrun:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only wires signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("localrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	exit := fs.Bool("exit", os.Getenv(exitEnv) != "", "exit right after printing instead of running until Ctrl-C (also $"+exitEnv+")")
	if err := fs.Parse(args); err != nil {
		return err
	}

	d := &demo{out: stdout}
	defer func() {
		if ctx.Err() != nil { // Ctrl-C while starting is not a failure
			err = nil
		}
		if cerr := d.cleanUp(err != nil); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := d.start(ctx); err != nil {
		return err
	}
	r, err := d.apply(ctx)
	if err != nil {
		return err
	}
	step6, failures, err := d.exchanges(ctx, r)
	if err != nil {
		return err
	}
	d.report(r)
	d.reportExchanges(r, step6, failures)
	if *exit {
		return nil
	}
	d.explore(r)
	fmt.Fprint(d.out, "\nPress Ctrl-C to stop the control plane and the webhook and remove their files.\n")
	<-ctx.Done()
	fmt.Fprint(d.out, "\nStopping...")
	return nil
}

// demo is what the program started, for cleanUp.
type demo struct {
	out     io.Writer
	dir     string // webhook binary, certificate, log
	cp      *controlplane.ControlPlane
	webhook *webhookproc.Process
	cs      *kubernetes.Clientset
	warn    *controlplane.Warnings
	root    string // module root
	// policyFile is the role's trust policy the trust check reads (step 3).
	policyFile string
	binary     string            // irsa-webhook, for serve and doctor
	iam        *iamserver.Server // the local IAM and STS endpoint (steps 1, 3 and 6)
}

// start brings up the control plane and the webhook, registered.
func (d *demo) start(ctx context.Context) error {
	var err error
	if d.root, err = webhookproc.ModuleRoot(ctx); err != nil {
		return err
	}
	if d.dir, err = os.MkdirTemp("", "irsa-localrun-"); err != nil {
		return fmt.Errorf("create temporary directory: %w", err)
	}
	d.binary = filepath.Join(d.dir, "irsa-webhook")
	built := make(chan error, 1)
	go func() { built <- webhookproc.Build(ctx, d.root, d.binary) }()

	began := time.Now()
	binDir, err := d.binaries(ctx)
	if err != nil {
		return err
	}
	if d.cp, err = controlplane.Start(ctx, controlplane.Options{Dir: binDir, IssuerURL: issuer}); err != nil {
		return err
	}
	cfg := d.cp.Config()
	d.warn = &controlplane.Warnings{}
	cfg.WarningHandler = d.warn // shown in the report, instead of as klog lines
	if d.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	version := "kube-apiserver"
	if v, err := d.cs.Discovery().ServerVersion(); err == nil {
		version += " " + v.GitVersion
	}
	cpReady := time.Since(began)

	if err := <-built; err != nil {
		return err
	}
	began = time.Now()
	tls, err := webhookproc.WriteServingCert(d.dir, time.Now())
	if err != nil {
		return err
	}
	// Step 3's trust policy, as `irsa-webhook trust policy` writes it, stands in for IAM:
	// the trust check reads it from a directory (--trust-policy-dir), so no AWS is needed.
	roleARN, policy, err := writeTrustPolicy(d.dir, filepath.Join(d.root, examplesDir, "serviceaccount.yaml"))
	if err != nil {
		return err
	}
	d.policyFile = filepath.Join(d.dir, "trust-policies", roleName(roleARN)+".json")
	// The same policy is the role's in the local IAM endpoint, whose STS the pod's SDK asks.
	if err := d.startIAM(ctx, roleARN, policy); err != nil {
		return err
	}
	args := append([]string{"--trust-check=warn", "--trust-policy-dir=" + filepath.Dir(d.policyFile), "--oidc-issuer-url=" + issuer}, webhookArgs...)
	if d.webhook, err = webhookproc.Start(webhookproc.Options{
		Binary:     d.binary,
		Kubeconfig: d.cp.KubeconfigPath(),
		TLS:        tls,
		LogPath:    filepath.Join(d.dir, "irsa-webhook.log"),
		Args:       args,
	}); err != nil {
		return err
	}
	if err := d.webhook.WaitReady(ctx, readyTimeout); err != nil {
		return err
	}
	whConfig := webhookproc.PodWebhookConfiguration(webhookConfig, d.webhook.URL(webhookproc.PodPath), tls.CAPEM, admissionregistrationv1.Fail)
	if _, err := d.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, whConfig, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register the webhook: %w", err)
	}
	saConfig := webhookproc.ServiceAccountWebhookConfiguration(webhookConfig, d.webhook.URL(webhookproc.ServiceAccountPath), tls.CAPEM, admissionregistrationv1.Ignore)
	if _, err := d.cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, saConfig, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register the trust check: %w", err)
	}

	fmt.Fprintf(d.out, "irsa-webhook local demo: %s/ on a local cluster, no AWS account needed\n\n", examplesDir)
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  control plane\t%s and etcd at %s (ready in %s)\n", version, d.cp.Host(), cpReady.Round(100*time.Millisecond))
	fmt.Fprintf(tw, "  OIDC issuer\t%s\n", d.cp.IssuerURL())
	fmt.Fprintf(tw, "  webhook\t%s (ready in %s)\n", d.webhook.URL(webhookproc.PodPath), time.Since(began).Round(100*time.Millisecond))
	fmt.Fprintf(tw, "  webhook log\t%s\n", d.webhook.LogPath())
	return tw.Flush()
}

// binaries finds or builds the control-plane binaries, saying so when it takes a while.
func (d *demo) binaries(ctx context.Context) (string, error) {
	type result struct {
		dir string
		err error
	}
	done := make(chan result, 1)
	go func() {
		dir, err := controlplane.Binaries(ctx)
		done <- result{dir, err}
	}()
	select {
	case r := <-done:
		return r.dir, r.err
	case <-time.After(slowBinariesAfter):
		fmt.Fprintln(d.out, "Building etcd, kube-apiserver and kubectl from source (first run only: about 9 minutes on 2 cores)...")
	}
	r := <-done
	return r.dir, r.err
}

// applied is what apply created, for the report.
type applied struct {
	sa       *corev1.ServiceAccount
	template *corev1.PodTemplateSpec // of the example Deployment
	deploy   string
	pod      *corev1.Pod
	warnings []string // admission warnings of the pod's creation
	claims   jwtclaims.Claims
	// saWarnings are the trust check's warnings when the ServiceAccount was created (none:
	// its role trusts it); mistake is the same ServiceAccount in another namespace, which
	// the role does not trust, and mistakeWarnings what the trust check said of it.
	saWarnings      []string
	mistake         *corev1.ServiceAccount
	mistakeWarnings []string
}

// apply runs the walkthrough's steps 4 and 5 with the example manifests and asks for the token
// of step 6.
func (d *demo) apply(ctx context.Context) (*applied, error) {
	var ns corev1.Namespace
	var sa corev1.ServiceAccount
	var deploy appsv1.Deployment
	for name, into := range map[string]any{"namespace.yaml": &ns, "serviceaccount.yaml": &sa, "deployment.yaml": &deploy} {
		path := filepath.Join(d.root, examplesDir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read example: %w", err)
		}
		if err := yaml.UnmarshalStrict(data, into); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	r := &applied{template: &deploy.Spec.Template, deploy: deploy.Name}
	if _, err := d.cs.CoreV1().Namespaces().Create(ctx, &ns, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", ns.Name, err)
	}
	if err := d.waitUntilChecked(ctx, &sa); err != nil {
		return nil, err
	}
	d.warn.Take("")
	created, err := d.cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, &sa, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create serviceaccount %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	r.sa = created
	r.saWarnings = d.warn.Take("")
	if r.mistake, r.mistakeWarnings, err = d.wrongNamespace(ctx, &sa); err != nil {
		return nil, err
	}

	// What the Deployment's ReplicaSet would create.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: deploy.Name + "-", Namespace: deploy.Namespace, Labels: deploy.Spec.Template.Labels, Annotations: deploy.Spec.Template.Annotations},
		Spec:       *deploy.Spec.Template.Spec.DeepCopy(),
	}
	if err := d.waitUntilCalled(ctx, pod); err != nil {
		return nil, err
	}
	d.warn.Take("")
	if r.pod, err = d.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create pod from deployment %s: %w", deploy.Name, err)
	}
	r.warnings = d.warn.Take("")
	if podcreds.TokenSource(r.pod) == nil {
		return nil, fmt.Errorf("pod %s/%s has no %s volume: the webhook did not mutate it (log: %s)", r.pod.Namespace, r.pod.Name, irsa.VolumeName, d.webhook.LogPath())
	}
	// The token the kubelet asks for: the volume's audience and lifetime, bound to the pod.
	token, err := podcreds.Token(ctx, d.cs, r.pod)
	if err != nil {
		return nil, err
	}
	if r.claims, err = jwtclaims.Decode(token); err != nil {
		return nil, err
	}
	return r, nil
}

// waitUntilCalled dry-runs the pod's creation until the API server has picked up the webhook
// configuration and the webhook mutates it (usually at the first try).
func (d *demo) waitUntilCalled(ctx context.Context, pod *corev1.Pod) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		p, err := d.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && podcreds.TokenSource(p) != nil {
			return nil
		}
		if err == nil {
			err = errors.New("the pod came back unchanged")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not call the webhook: %w (log: %s)", err, d.webhook.LogPath())
		case <-time.After(pollEvery):
		}
	}
}

// waitUntilChecked dry-runs the ServiceAccount's creation in a namespace its role does not
// trust until the trust check answers with a warning: from then on the API server calls it,
// and "no warning" means "trusted".
func (d *demo) waitUntilChecked(ctx context.Context, sa *corev1.ServiceAccount) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	probe := sa.DeepCopy()
	probe.Namespace = sa.Namespace // the namespace exists; the name makes the role not trust it
	probe.Name = sa.Name + "-probe"
	for {
		d.warn.Take("")
		_, err := d.cs.CoreV1().ServiceAccounts(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && len(d.warn.Take("")) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the API server does not call the trust check (log: %s)", d.webhook.LogPath())
		case <-time.After(pollEvery):
		}
	}
}

// report prints the walkthrough's steps 4 to 6 as this cluster shows them.
func (d *demo) report(r *applied) {
	out := d.out
	p := r.pod
	roleKey := irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)
	fmt.Fprintf(out, "\nStep 3  The role's trust policy (written by `irsa-webhook trust policy`) is %s\n", d.policyFile)
	fmt.Fprintf(out, "Step 4  ServiceAccount %s/%s is annotated %s=%s\n", r.sa.Namespace, r.sa.Name, roleKey, r.sa.Annotations[roleKey])
	if len(r.saWarnings) == 0 {
		fmt.Fprintf(out, "        trust check: the role trusts system:serviceaccount:%s:%s (no warning)\n", r.sa.Namespace, r.sa.Name)
	}
	for _, w := range r.saWarnings {
		fmt.Fprintf(out, "        warning: %s\n", w)
	}
	fmt.Fprintf(out, "Step 5  Pod %s/%s (Deployment %s's template) runs as serviceAccountName %s; the webhook mutated it at creation\n", p.Namespace, p.Name, r.deploy, p.Spec.ServiceAccountName)
	for _, w := range r.warnings {
		fmt.Fprintf(out, "        warning: %s\n", w)
	}
	fmt.Fprintf(out, "Step 6  What the pod sees:\n")

	own := map[string]bool{}
	for _, c := range r.template.Spec.Containers {
		for _, e := range c.Env {
			own[c.Name+"/"+e.Name] = true
		}
	}
	var mountedIn []string
	var mountPath string
	for _, c := range p.Spec.Containers {
		fmt.Fprintf(out, "\n  Environment of container %q\n", c.Name)
		tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
		for _, e := range c.Env {
			origin := "injected by the webhook"
			if own[c.Name+"/"+e.Name] {
				origin = "from deployment.yaml"
			}
			fmt.Fprintf(tw, "    %s=%s\t%s\n", e.Name, e.Value, origin)
		}
		_ = tw.Flush()
		for _, m := range c.VolumeMounts {
			if m.Name == irsa.VolumeName {
				mountedIn, mountPath = append(mountedIn, c.Name), m.MountPath
			}
		}
	}

	src := podcreds.TokenSource(p)
	fmt.Fprintf(out, "\n  Volume and mount\n")
	tw := tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "    volume\t%s\tprojected serviceAccountToken: audience %s, expirationSeconds %d, path %s\n", irsa.VolumeName, src.Audience, *src.ExpirationSeconds, src.Path)
	fmt.Fprintf(tw, "    mount\t%s\t%s (read-only) in containers: %s\n", irsa.VolumeName, mountPath, strings.Join(mountedIn, ", "))
	_ = tw.Flush()

	c := r.claims
	fmt.Fprintf(out, "\n  Token the kubelet writes to %s/%s\n  (from a TokenRequest with the volume's audience and lifetime, bound to the pod)\n", mountPath, src.Path)
	tw = tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "    iss\t%s\n", c.Issuer)
	fmt.Fprintf(tw, "    sub\t%s\n", c.Subject)
	fmt.Fprintf(tw, "    aud\t%s\n", strings.Join(c.Audience, ", "))
	fmt.Fprintf(tw, "    exp\t%s (valid for %s)\n", c.Expiry.Local().Format("2006-01-02 15:04:05 MST"), c.Lifetime())
	_ = tw.Flush()
}

// writeTrustPolicy writes the walkthrough's step 3 policy, for the example ServiceAccount
// and this cluster's issuer, into dir/trust-policies/<role-name>.json for the trust check.
func writeTrustPolicy(dir, saFile string) (role, doc string, err error) {
	data, err := os.ReadFile(saFile)
	if err != nil {
		return "", "", fmt.Errorf("read example: %w", err)
	}
	sa, err := manifest.ServiceAccount(data)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", saFile, err)
	}
	role = sa.Annotations[irsa.Key(irsa.DefaultAnnotationPrefix, irsa.RoleARNAnnotation)]
	if _, err := irsa.ParseRoleARN(role); err != nil {
		return "", "", fmt.Errorf("%s: %w", saFile, err)
	}
	doc, err = trustpolicy.Minimal(trustpolicy.Request{RoleARN: role, IssuerURL: issuer, Namespace: sa.Namespace, ServiceAccount: sa.Name, Audience: irsa.DefaultTokenAudience})
	if err != nil {
		return "", "", err
	}
	policyDir := filepath.Join(dir, "trust-policies")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", policyDir, err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, roleName(role)+".json"), []byte(doc+"\n"), 0o644); err != nil {
		return "", "", fmt.Errorf("write trust policy: %w", err)
	}
	return role, doc, nil
}

// roleName is the name of a role ARN already validated.
func roleName(arn string) string {
	a, _ := irsa.ParseRoleARN(arn)
	return a.Name
}

// wrongNamespace creates the example ServiceAccount in a "staging" namespace, the
// walkthrough's most common mistake, and returns the trust check's warnings.
func (d *demo) wrongNamespace(ctx context.Context, sa *corev1.ServiceAccount) (*corev1.ServiceAccount, []string, error) {
	const ns = "staging"
	if _, err := d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, nil, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	wrong := sa.DeepCopy()
	wrong.Namespace = ns
	d.warn.Take("")
	created, err := d.cs.CoreV1().ServiceAccounts(ns).Create(ctx, wrong, metav1.CreateOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("create serviceaccount %s/%s: %w", ns, wrong.Name, err)
	}
	return created, d.warn.Take(""), nil
}

// explore prints how to look at the running cluster with kubectl.
func (d *demo) explore(r *applied) {
	out, p := d.out, r.pod
	kubectl := "kubectl"
	if _, err := exec.LookPath("kubectl"); err != nil {
		kubectl = d.cp.Kubectl().Path
	}
	fmt.Fprintf(out, "\nThe cluster is yours to explore:\n")
	fmt.Fprintf(out, "  export KUBECONFIG=%s\n", d.cp.KubeconfigPath())
	fmt.Fprintf(out, "  %s get pod -n %s %s -o yaml\n", kubectl, p.Namespace, p.Name)
	fmt.Fprintf(out, "  %s run try-me -n %s --image=busybox --overrides='{\"spec\":{\"serviceAccountName\":\"%s\"}}' --dry-run=server -o yaml\n", kubectl, p.Namespace, p.Spec.ServiceAccountName)
	fmt.Fprintf(out, "  %s create token %s -n %s --audience %s\n", kubectl, p.Spec.ServiceAccountName, p.Namespace, irsa.DefaultTokenAudience)
}

// cleanUp stops what start started and removes its files; after a failure the webhook's files
// are kept for a look and their place printed.
func (d *demo) cleanUp(failed bool) error {
	var errs []error
	if d.iam != nil {
		d.iam.Close()
	}
	if err := d.webhook.Stop(); err != nil {
		errs = append(errs, err)
	}
	if d.cp != nil {
		if err := d.cp.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.dir != "" {
		if failed {
			fmt.Fprintf(d.out, "Webhook files kept in %s\n", d.dir)
		} else if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", d.dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up: %w", err)
	}
	if !failed {
		fmt.Fprintln(d.out, "\nStopped the control plane and the webhook; temporary files removed.")
	}
	return nil
}
