package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// doctorOptions are doctor's flags; defineDoctorFlags is the only place they are declared.
type doctorOptions struct {
	kubeconfig   string
	namespace    string
	output       string
	action       string
	resource     string
	webhookNames []string
	timeout      time.Duration
	defaults     irsa.Defaults
}

// Default names of the IRSA pod webhook: this chart's and the AWS reference webhook's.
var defaultDoctorWebhookNames = []string{"pod.irsa-webhook.io", "iam-for-pods.amazonaws.com"}

// doctorCallTimeout bounds each Kubernetes and AWS call of doctor.
const doctorCallTimeout = 10 * time.Second

func newDoctorCommand(s streams) *cobra.Command {
	o := &doctorOptions{defaults: irsa.NewDefaults(), webhookNames: defaultDoctorWebhookNames}
	cmd := &cobra.Command{
		Use:   "doctor pod|serviceaccount NAME [-n NS] [flags]",
		Short: "Explain why a pod does (or would) not get AWS credentials",
		Long: `An ordered checklist of why a pod does (or would) not get AWS credentials, each line
✓ ok, ✗ a problem with its fix, ? not verifiable; exit 0 all good, 1 a problem,
2 bad input, 3 something could not be verified. Kubernetes access as kubectl finds it
($KUBECONFIG, ~/.kube/config, in-cluster), AWS credentials from the default chain.`,
		Example: `  irsa-webhook doctor pod app-7d9c4 -n production
  irsa-webhook doctor serviceaccount s3-writer -n production --action s3:PutObject --resource 'arn:aws:s3:::my-app-uploads/*'`,
		RunE: func(cmd *cobra.Command, args []string) error { return runDoctor(cmd.Context(), *o, args, s) },
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return []string{"pod", "serviceaccount"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
	defineDoctorFlags(cmd, o)
	return cmd
}

func defineDoctorFlags(cmd *cobra.Command, o *doctorOptions) {
	fs := cmd.Flags()
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: the kubeconfig context's)")
	addOutputFlag(cmd, &o.output, "text", "json")
	fs.StringVar(&o.action, "action", "", "also check that the role may perform this action, e.g. s3:PutObject (iam:SimulatePrincipalPolicy)")
	fs.StringVar(&o.resource, "resource", "*", "the resource ARN of --action, e.g. arn:aws:s3:::my-app-uploads/*")
	fs.Var((*listFlag)(&o.webhookNames), "webhook-name", "comma-separated names of the IRSA mutating webhook")
	fs.DurationVar(&o.timeout, "timeout", doctorCallTimeout, "deadline of each Kubernetes and AWS call")
	fs.StringVar(&o.defaults.AnnotationPrefix, "annotation-prefix", o.defaults.AnnotationPrefix, "the webhook's --annotation-prefix")
	fs.StringVar(&o.defaults.TokenAudience, "token-audience", o.defaults.TokenAudience, "the webhook's --token-audience")
	fs.Int64Var(&o.defaults.TokenExpiration, "token-expiration", o.defaults.TokenExpiration, "the webhook's --token-expiration")
}

func runDoctor(ctx context.Context, o doctorOptions, pos []string, s streams) error {
	var errs []error
	if len(pos) != 2 || (pos[0] != "pod" && pos[0] != "serviceaccount" && pos[0] != "sa") {
		errs = append(errs, fmt.Errorf("want \"pod NAME\" or \"serviceaccount NAME\", got %q", pos))
	}
	if o.output != "text" && o.output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be text or json", o.output))
	}
	if o.timeout <= 0 || o.timeout > time.Minute {
		errs = append(errs, fmt.Errorf("--timeout %s must be within (0, 1m]", o.timeout))
	}
	if o.resource != "*" && o.action == "" {
		errs = append(errs, fmt.Errorf("--resource needs --action"))
	}
	errs = append(errs, o.defaults.Validate()...)
	if err := joinProblems(errs); err != nil {
		return err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	if o.namespace == "" {
		ns, _, err := cc.Namespace()
		if err != nil {
			return fmt.Errorf("read the namespace from the kubeconfig: %w", err)
		}
		o.namespace = ns
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "irsa-webhook-doctor/" + version
	g := gatherer{opts: o, timeout: o.timeout}
	facts, err := g.gather(ctx, cfg, pos[0] == "pod", pos[1])
	if err != nil {
		return err
	}
	report := doctor.Evaluate(facts)
	if err := printDoctor(s.out, o.output, report); err != nil {
		return err
	}
	if code := report.ExitCode(); code != exitOK {
		return exitError{code: code}
	}
	return nil
}

func printDoctor(w io.Writer, output string, r doctor.Report) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "irsa-webhook doctor %s\n", r.Target)
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s %-16s %s\n", c.Status.Symbol(), c.Name, c.Message)
		if c.Fix != "" {
			fmt.Fprintf(w, "  %-16s fix: %s\n", "", c.Fix)
		}
	}
	return nil
}
