// Command irsa-webhook injects AWS IAM Roles for Service Accounts credentials into pods
// and checks that the roles ServiceAccounts name actually trust them.
//
// main only wires: every decision lives in a package under webhook/ or certs/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Build information, set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes shared by the subcommands.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and the answer is "no" (or serving failed)
	exitUsage = 2 // bad flags, bad input
)

// usageError marks errors that are the caller's fault (exit 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries a specific exit code with an optional message.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

type streams struct {
	in       io.Reader
	out, err io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], streams{os.Stdin, os.Stdout, os.Stderr}), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode prints err (if any) and maps it to the process exit code: one exit point.
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(stderr, "irsa-webhook:", ee.err)
		}
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "irsa-webhook:", err)
		return exitUsage
	}
	fmt.Fprintln(stderr, "irsa-webhook:", err)
	return exitFail
}

// newRootCommand builds the command tree for one run: every command reads and writes s, and
// nothing is kept between runs (the tests call run many times in one process). reference
// gives serve the reference webhook's defaults (see run).
func newRootCommand(s streams, reference bool) *cobra.Command {
	serve := newServeOptions()
	if reference {
		serve.useReferenceDefaults()
	}
	root := &cobra.Command{
		Use:   "irsa-webhook",
		Short: "IAM Roles for Service Accounts for any Kubernetes cluster",
		Long: `irsa-webhook: IAM Roles for Service Accounts for any Kubernetes cluster.

It injects a pod's AWS web-identity credentials (serve), shows offline what it would inject
(mutate), checks that IAM roles trust the ServiceAccounts that name them (trust) and explains
why a pod does or does not get credentials (doctor).

Invoked with flags and no command, as the Deployments of the reference webhook
(aws/amazon-eks-pod-identity-webhook) invoke it, it runs serve with that webhook's defaults
(see irsa-webhook serve --help).`,
		Version:       version,
		SilenceErrors: true, // exitCode prints the error, once
		SilenceUsage:  true, // a usage error is one line, not the whole help
	}
	root.SetVersionTemplate("irsa-webhook {{.Version}} (commit " + commit + ")\n")
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServeCommand(serve),
		newMutateCommand(s),
		newTrustCommand(s),
		newDoctorCommand(s),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run: func(*cobra.Command, []string) {
				fmt.Fprintf(s.out, "irsa-webhook %s (commit %s)\n", version, commit)
			},
		},
	)
	return root
}

// run executes the command line args (without the program name).
func run(ctx context.Context, args []string, s streams) error {
	// Flags without a command are a command line written for the reference webhook, which has
	// no subcommands: serve. Only --help or --version alone keep their top-level meaning.
	reference := len(args) > 0 && strings.HasPrefix(args[0], "-") &&
		(len(args) > 1 || !slices.Contains([]string{"-h", "--help", "--version"}, args[0]))
	root := newRootCommand(s, reference)
	if reference {
		args = append([]string{"serve"}, args...)
	}
	if len(args) == 0 {
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		fmt.Fprint(s.err, root.UsageString())
		return usagef("no command given")
	}
	root.SetArgs(args)
	// Errors before a command runs (unknown command or flag, wrong number of arguments) are
	// the caller's: exit 2. PersistentPreRun runs once flags and arguments have been accepted.
	started := false
	root.PersistentPreRun = func(*cobra.Command, []string) { started = true }
	err := root.ExecuteContext(ctx)
	if err != nil && !started {
		var ue usageError
		if !errors.As(err, &ue) {
			err = usageError{err}
		}
	}
	return err
}
