package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// addMutationFlags registers the flags that shape the injection; serve and mutate share them.
func addMutationFlags(fs *pflag.FlagSet, d *irsa.Defaults) {
	fs.StringVar(&d.AnnotationPrefix, "annotation-prefix", d.AnnotationPrefix, "prefix of the ServiceAccount and Pod annotations the webhook reads")
	fs.StringVar(&d.TokenAudience, "token-audience", d.TokenAudience, "audience of the projected token, unless the ServiceAccount's audience annotation says otherwise")
	fs.StringVar(&d.TokenMountPath, "token-mount-path", d.TokenMountPath, "where the token volume is mounted in every container")
	fs.Int64Var(&d.TokenExpiration, "token-expiration", d.TokenExpiration, fmt.Sprintf("token lifetime in seconds [%d, %d], unless an annotation says otherwise", irsa.MinTokenExpiration, irsa.MaxTokenExpiration))
	fs.StringVar(&d.Region, "aws-default-region", d.Region, "if set, AWS_REGION and AWS_DEFAULT_REGION are injected with this value")
	fs.BoolVar(&d.STSRegionalEndpoint, "sts-regional-endpoint", d.STSRegionalEndpoint, "inject AWS_STS_REGIONAL_ENDPOINTS=regional (a ServiceAccount can opt out with its sts-regional-endpoints annotation)")
	fs.Var((*listFlag)(&d.AllowedRoleAccounts), "allowed-role-accounts", "comma-separated AWS account IDs whose roles may be injected; empty allows any")
}

// listFlag is a comma-separated list flag; empty items are dropped.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Type names the value in --help.
func (l *listFlag) Type() string { return "strings" }

func (l *listFlag) Set(v string) error {
	*l = nil // not (*l)[:0]: the default may be a shared slice
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// joinProblems reports every validation problem at once.
func joinProblems(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = "  - " + e.Error()
	}
	return usagef("invalid flags:\n%s", strings.Join(msgs, "\n"))
}
