// Command irsa-webhook injects AWS IAM Roles for Service Accounts credentials into pods
// and checks that the roles ServiceAccounts name actually trust them.
//
// main only wires: every decision lives in a package under webhook/ or certs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
	case errors.Is(err, flag.ErrHelp):
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

const topUsage = `irsa-webhook: IAM Roles for Service Accounts for any Kubernetes cluster.

Usage:
  irsa-webhook serve   [flags]                      run the admission webhook
  irsa-webhook mutate  --service-account SA.yaml [flags] FILE|-
                                                    print what the webhook would do to a manifest
  irsa-webhook trust   check|policy|audit [flags]   check that IAM roles trust their ServiceAccounts
  irsa-webhook doctor  pod|serviceaccount NAME [-n NS] [--action A --resource R] [-o text|json]
                                                    explain why a pod does (or would) not get AWS credentials
  irsa-webhook version                              print the version

Run "irsa-webhook COMMAND --help" for a command's flags.
`

func run(ctx context.Context, args []string, s streams) error {
	if len(args) == 0 {
		fmt.Fprint(s.err, topUsage)
		return usagef("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return runServe(ctx, rest, s)
	case "mutate":
		return runMutate(rest, s)
	case "trust":
		return runTrust(ctx, rest, s)
	case "doctor":
		return runDoctor(ctx, rest, s)
	case "version", "--version":
		fmt.Fprintf(s.out, "irsa-webhook %s (commit %s)\n", version, commit)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(s.out, topUsage)
		return nil
	default:
		fmt.Fprint(s.err, topUsage)
		return usagef("unknown command %q", cmd)
	}
}
