package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
	"github.com/irsa-webhook/irsa-webhook/webhook/manifest"
)

const mutateUsage = `Usage: irsa-webhook mutate --service-account SA.yaml [flags] FILE|-

Prints the manifest (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)
as the webhook would admit it. Warnings go to stderr. Exit 0 on success, 2 on bad input.

Flags:
`

func runMutate(args []string, s streams) error {
	d := irsa.NewDefaults()
	var saFile, output string
	fs := flag.NewFlagSet("irsa-webhook mutate", flag.ContinueOnError)
	fs.StringVar(&saFile, "service-account", "", "ServiceAccount manifest (YAML or JSON) the pod runs as (required)")
	fs.StringVar(&output, "o", "yaml", "output format: yaml or json")
	addMutationFlags(fs, &d)
	fs.Usage = func() { fmt.Fprint(fs.Output(), mutateUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
	var errs []error
	if saFile == "" {
		errs = append(errs, errors.New("--service-account is required"))
	}
	if output != "yaml" && output != "json" {
		errs = append(errs, fmt.Errorf("-o %q must be yaml or json", output))
	}
	if fs.NArg() != 1 {
		errs = append(errs, fmt.Errorf("want exactly one manifest FILE (or - for stdin), got %d", fs.NArg()))
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
	name := fs.Arg(0)
	var doc []byte
	if name == "-" {
		doc, err = io.ReadAll(s.in)
	} else {
		doc, err = os.ReadFile(name)
	}
	if err != nil {
		return usagef("read manifest: %v", err)
	}
	res, err := manifest.Mutate(doc, sa, d, manifest.Format(output))
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
