package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// Exit codes of trust check (and audit): 0 trusted, 1 not trusted, 2 bad input, 3 undetermined.
const exitUndetermined = 3

func newTrustCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust check|policy|audit [flags]",
		Short: "Check that IAM roles trust their ServiceAccounts",
		Long: `Checks that IAM roles trust the ServiceAccounts that name them.

  check   one role and ServiceAccount: exit 0 trusted, 1 not trusted, 2 bad input (also a
          --policy-file that is not a trust policy IAM would store), 3 undetermined; without
          --policy-file it asks IAM
  policy  print the minimal correct trust policy
  audit   every annotated ServiceAccount with its verdict, and its running pods created with
          other credentials (to restart); exit 1 if any is not trusted or any pod is stale`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("trust: no subcommand given (check, policy or audit)")
			}
			return usagef("trust: unknown subcommand %q", args[0])
		},
		Run: func(*cobra.Command, []string) {}, // Args refuses every call without a subcommand
	}
	cmd.AddCommand(newTrustCheckCommand(s), newTrustPolicyCommand(s), newTrustAuditCommand(s))
	return cmd
}

// requestFlags are the flags naming one check.
type requestFlags struct{ trustpolicy.Request }

func (r *requestFlags) add(fs *pflag.FlagSet) {
	r.Audience = irsa.DefaultTokenAudience
	fs.StringVar(&r.RoleARN, "role-arn", "", "the IAM role (required)")
	fs.StringVar(&r.IssuerURL, "issuer", "", "the cluster's OIDC issuer URL, e.g. https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE (required)")
	fs.StringVar(&r.Namespace, "namespace", "", "the ServiceAccount's namespace (required)")
	fs.StringVar(&r.ServiceAccount, "service-account", "", "the ServiceAccount's name (required)")
	fs.StringVar(&r.Audience, "audience", r.Audience, "the token audience")
}

func (r *requestFlags) validate() []error {
	var errs []error
	if _, err := irsa.ParseRoleARN(r.RoleARN); err != nil {
		errs = append(errs, fmt.Errorf("--role-arn: %w", err))
	}
	if _, err := trustpolicy.IssuerPath(r.IssuerURL); err != nil {
		errs = append(errs, fmt.Errorf("--issuer: %w", err))
	}
	if r.Namespace == "" || r.ServiceAccount == "" {
		errs = append(errs, errors.New("--namespace and --service-account are required"))
	}
	if r.Audience == "" {
		errs = append(errs, errors.New("--audience must not be empty"))
	}
	return errs
}

// policyText is a trust source holding one policy, read from --policy-file.
type policyText string

func (p policyText) TrustPolicy(context.Context, string) (string, error) { return string(p), nil }

// trustCheckOptions are trust check's flags.
type trustCheckOptions struct {
	r                  requestFlags
	policyFile, output string
	opts               trustOptions
}

func newTrustCheckCommand(s streams) *cobra.Command {
	o := &trustCheckOptions{output: "text", opts: newTrustOptions()}
	cmd := &cobra.Command{
		Use:   "check --role-arn ARN --issuer URL --namespace NS --service-account NAME [flags]",
		Short: "Check that one role trusts one ServiceAccount",
		Long: `Checks that the role trusts the ServiceAccount, with the trust policy from --policy-file or
from IAM. Exit 0 trusted, 1 not trusted, 2 bad input (also a --policy-file that is not a
trust policy IAM would store), 3 undetermined.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrustCheck(cmd.Context(), o, s) },
	}
	fs := cmd.Flags()
	o.r.add(fs)
	fs.StringVar(&o.policyFile, "policy-file", "", "check this trust policy (JSON or URL-encoded) instead of asking IAM")
	addOutputFlag(cmd, &o.output, "text", "json")
	fs.DurationVar(&o.opts.timeout, "timeout", o.opts.timeout, "deadline of the IAM call")
	_ = cmd.MarkFlagFilename("policy-file", "json")
	return cmd
}

// addOutputFlag adds -o/--output with its allowed values (the first is the default).
func addOutputFlag(cmd *cobra.Command, output *string, formats ...string) {
	cmd.Flags().StringVarP(output, "output", "o", formats[0], "output: "+strings.Join(formats, " or "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

func runTrustCheck(ctx context.Context, o *trustCheckOptions, s streams) error {
	r, policyFile, output, opts := o.r, o.policyFile, o.output, o.opts
	errs := r.validate()
	if output != "text" && output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be text or json", output))
	}
	if err := joinProblems(errs); err != nil {
		return err
	}
	var src serviceaccount.TrustSource
	if policyFile != "" {
		doc, err := os.ReadFile(policyFile)
		if err != nil {
			return usagef("read policy file: %v", err)
		}
		// The file is the user's input: one that is not a trust policy IAM would store is
		// bad input (exit 2), not an undetermined verdict (that is for IAM's answers).
		p, err := trustpolicy.Parse(string(doc))
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return usagef("policy file %s: %v", policyFile, err)
		}
		src = policyText(doc)
	} else {
		var err error
		if src, err = opts.source(ctx, logr.Discard()); err != nil {
			return err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	v := serviceaccount.Verify(cctx, src, r.Request)
	if err := printVerdicts(s.out, output, []auditRow{{Namespace: r.Namespace, Name: r.ServiceAccount, Verdict: v}}, true); err != nil {
		return err
	}
	switch v.Result {
	case trustpolicy.Trusted:
		return nil
	case trustpolicy.NotTrusted:
		return exitError{code: exitFail}
	}
	return exitError{code: exitUndetermined}
}

func newTrustPolicyCommand(s streams) *cobra.Command {
	var r requestFlags
	cmd := &cobra.Command{
		Use:   "policy --role-arn ARN --issuer URL --namespace NS --service-account NAME [--audience A]",
		Short: "Print the minimal correct trust policy",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return runTrustPolicy(r, s) },
	}
	r.add(cmd.Flags())
	return cmd
}

func runTrustPolicy(r requestFlags, s streams) error {
	if err := joinProblems(r.validate()); err != nil {
		return err
	}
	doc, err := trustpolicy.Minimal(r.Request)
	if err != nil {
		return usagef("%v", err)
	}
	fmt.Fprintln(s.out, doc)
	return nil
}

type auditRow struct {
	Namespace string
	Name      string
	Verdict   serviceaccount.Verdict
	StalePods []doctor.StalePod // running pods of this ServiceAccount to restart
}

// trustAuditOptions are trust audit's flags.
type trustAuditOptions struct {
	opts               trustOptions
	kubeconfig, output string
	prefix, audience   string
}

func newTrustAuditCommand(s streams) *cobra.Command {
	o := &trustAuditOptions{opts: newTrustOptions(), prefix: irsa.DefaultAnnotationPrefix, audience: irsa.DefaultTokenAudience}
	cmd := &cobra.Command{
		Use:   "audit [--kubeconfig F] [--oidc-issuer-url URL] [--trust-policy-dir DIR] [-o text|json]",
		Short: "Check every annotated ServiceAccount of the cluster, and list pods to restart",
		Long: `Checks every annotated ServiceAccount of the cluster and lists its running pods created
with other credentials (to restart). Exit 1 if any is not trusted or any pod is stale.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrustAudit(cmd.Context(), o, s) },
	}
	fs := cmd.Flags()
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty uses the in-cluster configuration")
	fs.StringVar(&o.opts.issuerURL, "oidc-issuer-url", "", "the cluster's OIDC issuer; empty discovers it from the API server")
	fs.StringVar(&o.opts.policyDir, "trust-policy-dir", "", "read trust policies from DIR/<role-name>.json instead of IAM")
	fs.StringVar(&o.prefix, "annotation-prefix", o.prefix, "annotation prefix")
	fs.StringVar(&o.audience, "token-audience", o.audience, "default token audience")
	addOutputFlag(cmd, &o.output, "text", "json")
	_ = cmd.MarkFlagFilename("kubeconfig")
	_ = cmd.MarkFlagDirname("trust-policy-dir")
	return cmd
}

func runTrustAudit(ctx context.Context, o *trustAuditOptions, s streams) error {
	opts, kubeconfig, output, prefix, audience := o.opts, o.kubeconfig, o.output, o.prefix, o.audience
	errs := opts.validate()
	if output != "text" && output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be text or json", output))
	}
	if err := joinProblems(errs); err != nil {
		return err
	}
	cfg, err := restConfig("", kubeconfig)
	if err != nil {
		return err
	}
	issuer, err := opts.issuer(ctx, cfg)
	if err != nil {
		return err
	}
	src, err := opts.source(ctx, logr.Discard())
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	list, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list serviceaccounts: %w", err)
	}
	d := irsa.NewDefaults()
	d.AnnotationPrefix, d.TokenAudience = prefix, audience
	stale, err := stalePods(ctx, cs, list.Items, d, s.err)
	if err != nil {
		return err
	}
	var rows []auditRow
	notTrusted := len(stale) > 0
	for _, sa := range list.Items {
		cctx, cancel := context.WithTimeout(ctx, opts.timeout)
		v, hasRole := serviceaccount.CheckServiceAccount(cctx, src, issuer, irsa.Object{Namespace: sa.Namespace, Name: sa.Name, Annotations: sa.Annotations}, d)
		cancel()
		if !hasRole {
			continue
		}
		notTrusted = notTrusted || v.Result == trustpolicy.NotTrusted
		rows = append(rows, auditRow{Namespace: sa.Namespace, Name: sa.Name, Verdict: v, StalePods: stale[sa.Namespace+"/"+sa.Name]})
	}
	slices.SortFunc(rows, func(a, b auditRow) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	if err := printVerdicts(s.out, output, rows, false); err != nil {
		return err
	}
	if notTrusted {
		return exitError{code: exitFail}
	}
	return nil
}

// printVerdicts prints verdicts as text (one check: a summary and its reasons; several: a
// table) or as a JSON array.
func printVerdicts(w io.Writer, output string, rows []auditRow, single bool) error {
	if output == "json" {
		type jsonRow struct {
			Namespace      string   `json:"namespace"`
			ServiceAccount string   `json:"serviceAccount"`
			RoleARN        string   `json:"roleArn"`
			Audience       string   `json:"audience"`
			Result         string   `json:"result"`
			Reasons        []string `json:"reasons"`
			// StalePods are its running pods created with other credentials: restart them.
			StalePods []doctor.StalePod `json:"stalePods,omitempty"`
		}
		out := make([]jsonRow, 0, len(rows))
		for _, r := range rows {
			out = append(out, jsonRow{r.Namespace, r.Name, r.Verdict.RoleARN, r.Verdict.Audience, serviceaccount.VerdictLabel(r.Verdict.Result), append([]string{}, r.Verdict.Reasons...), r.StalePods})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if single {
			return enc.Encode(out[0])
		}
		return enc.Encode(out)
	}
	if single {
		v := rows[0].Verdict
		fmt.Fprintf(w, "%s: %s\n", strings.ToUpper(strings.ReplaceAll(serviceaccount.VerdictLabel(v.Result), "_", " ")), firstLine(v))
		for _, r := range v.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSERVICEACCOUNT\tROLE\tVERDICT\tREASON")
	for _, r := range rows {
		reason := ""
		if len(r.Verdict.Reasons) > 0 {
			reason = r.Verdict.Reasons[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Verdict.RoleARN, serviceaccount.VerdictLabel(r.Verdict.Result), reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printStalePods(w, rows)
}

// firstLine is the verdict and the claims it rests on, in the words of the tenant's warning;
// the reasons follow it, one a line.
func firstLine(v serviceaccount.Verdict) string {
	return (serviceaccount.Verdict{Result: v.Result, RoleARN: v.RoleARN, Subject: v.Subject, Audience: v.Audience, Provider: v.Provider, Claims: v.Claims, Cause: v.Cause}).Summary()
}
