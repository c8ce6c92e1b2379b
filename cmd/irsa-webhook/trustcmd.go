package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/irsa-webhook/irsa-webhook/webhook/doctor"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/serviceaccount"
	"github.com/irsa-webhook/irsa-webhook/webhook/trustpolicy"
)

// Exit codes of trust check (and audit): 0 trusted, 1 not trusted, 2 bad input, 3 undetermined.
const exitUndetermined = 3

const trustUsage = `Usage:
  irsa-webhook trust check  --role-arn ARN --issuer URL --namespace NS --service-account NAME [--audience A] [--policy-file F] [-o text|json]
      exit 0 trusted, 1 not trusted, 2 bad input (also a --policy-file that is not a trust policy IAM would store),
      3 undetermined; without --policy-file it asks IAM
  irsa-webhook trust policy --role-arn ARN --issuer URL --namespace NS --service-account NAME [--audience A]
      print the minimal correct trust policy
  irsa-webhook trust audit  [--kubeconfig F] [--oidc-issuer-url URL] [--trust-policy-dir DIR] [-o text|json]
      every annotated ServiceAccount with its verdict, and its running pods created with other
      credentials (to restart); exit 1 if any is not trusted or any pod is stale
`

func runTrust(ctx context.Context, args []string, s streams) error {
	if len(args) == 0 {
		fmt.Fprint(s.err, trustUsage)
		return usagef("trust: no subcommand given")
	}
	switch args[0] {
	case "check":
		return runTrustCheck(ctx, args[1:], s)
	case "policy":
		return runTrustPolicy(args[1:], s)
	case "audit":
		return runTrustAudit(ctx, args[1:], s)
	case "-h", "--help", "help":
		fmt.Fprint(s.out, trustUsage)
		return nil
	}
	fmt.Fprint(s.err, trustUsage)
	return usagef("trust: unknown subcommand %q", args[0])
}

// requestFlags are the flags naming one check.
type requestFlags struct{ trustpolicy.Request }

func (r *requestFlags) add(fs *flag.FlagSet) {
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
	if err := serviceaccount.ValidIssuer(r.IssuerURL); err != nil {
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

func runTrustCheck(ctx context.Context, args []string, s streams) error {
	var r requestFlags
	var policyFile, output string
	opts := newTrustOptions()
	fs := flag.NewFlagSet("irsa-webhook trust check", flag.ContinueOnError)
	r.add(fs)
	fs.StringVar(&policyFile, "policy-file", "", "check this trust policy (JSON or URL-encoded) instead of asking IAM")
	fs.StringVar(&output, "o", "text", "output: text or json")
	fs.DurationVar(&opts.timeout, "timeout", opts.timeout, "deadline of the IAM call")
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
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

func runTrustPolicy(args []string, s streams) error {
	var r requestFlags
	fs := flag.NewFlagSet("irsa-webhook trust policy", flag.ContinueOnError)
	r.add(fs)
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
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

func runTrustAudit(ctx context.Context, args []string, s streams) error {
	opts := newTrustOptions()
	var kubeconfig, output string
	prefix := irsa.DefaultAnnotationPrefix
	audience := irsa.DefaultTokenAudience
	fs := flag.NewFlagSet("irsa-webhook trust audit", flag.ContinueOnError)
	fs.StringVar(&kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file; empty uses the in-cluster configuration")
	fs.StringVar(&opts.issuerURL, "oidc-issuer-url", "", "the cluster's OIDC issuer; empty discovers it from the API server")
	fs.StringVar(&opts.policyDir, "trust-policy-dir", "", "read trust policies from DIR/<role-name>.json instead of IAM")
	fs.StringVar(&prefix, "annotation-prefix", prefix, "annotation prefix")
	fs.StringVar(&audience, "token-audience", audience, "default token audience")
	fs.StringVar(&output, "o", "text", "output: text or json")
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
	errs := opts.validate()
	if output != "text" && output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be text or json", output))
	}
	if err := joinProblems(errs); err != nil {
		return err
	}
	cfg, err := restConfig(kubeconfig)
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

func firstLine(v serviceaccount.Verdict) string {
	return (serviceaccount.Verdict{Result: v.Result, RoleARN: v.RoleARN, Subject: v.Subject, Audience: v.Audience}).Summary()
}
