package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/irsa-webhook/irsa-webhook/webhook/admission"
	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
)

// mutateOptions are mutate's flags.
type mutateOptions struct {
	defaults irsa.Defaults
	saFile   string
	output   string
	excluded listFlag
}

func newMutateCommand(s streams) *cobra.Command {
	o := mutateOptions{defaults: irsa.NewDefaults(), excluded: defaultExcludedNamespaces()}
	cmd := &cobra.Command{
		Use:   "mutate --service-account SA.yaml [flags] FILE|-",
		Short: "Print what the webhook would do to a manifest",
		Long: `Prints the manifest (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)
as the webhook would admit it: the pod (template) is read exactly as the webhook reads it.
Warnings go to stderr. Exit 0 on success, 2 on bad input.`,
		Example: `  irsa-webhook mutate --service-account sa.yaml deployment.yaml
  kubectl get deploy app -o yaml | irsa-webhook mutate --service-account sa.yaml - -o json`,
		RunE: func(_ *cobra.Command, args []string) error { return runMutate(o, args, s) },
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml", "json"}, cobra.ShellCompDirectiveFilterFileExt
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.saFile, "service-account", o.saFile, "ServiceAccount manifest (YAML or JSON) the pod runs as (required)")
	addOutputFlag(cmd, &o.output, "yaml", "json")
	addMutationFlags(fs, &o.defaults)
	fs.Var(&o.excluded, "excluded-namespaces", excludedNamespacesUsage)
	_ = cmd.MarkFlagFilename("service-account", "yaml", "yml", "json")
	return cmd
}

func runMutate(o mutateOptions, args []string, s streams) error {
	d, saFile, output := o.defaults, o.saFile, o.output
	var errs []error
	if saFile == "" {
		errs = append(errs, errors.New("--service-account is required"))
	}
	if output != "yaml" && output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be yaml or json", output))
	}
	if len(args) != 1 {
		errs = append(errs, fmt.Errorf("want exactly one manifest FILE (or - for stdin), got %d", len(args)))
	}
	errs = append(errs, d.Validate()...)
	if err := joinProblems(errs); err != nil {
		return err
	}
	saDoc, err := os.ReadFile(saFile)
	if err != nil {
		return usagef("read service account: %v", err)
	}
	sa, err := manifest.ServiceAccount(saDoc)
	if err != nil {
		return usagef("%s: %v", saFile, err)
	}
	name := args[0]
	var doc []byte
	if name == "-" {
		doc, err = io.ReadAll(s.in)
	} else {
		doc, err = os.ReadFile(name)
	}
	if err != nil {
		return usagef("read manifest: %v", err)
	}
	res, err := manifest.Mutate(doc, sa, d, admission.ExcludedNamespaces(o.excluded), manifest.Format(output))
	if err != nil {
		if errors.Is(err, manifest.ErrInput) {
			return usagef("%s: %v", name, err)
		}
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(s.err, "Warning:", w)
	}
	_, err = s.out.Write(res.Object)
	return err
}
