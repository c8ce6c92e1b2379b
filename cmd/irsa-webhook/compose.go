package main

import (
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/irsa-webhook/irsa-webhook/webhook/irsa"
)

// composeOptions is --compose-role-arn: a role annotation (or ConfigMap RoleARN) may name the
// role by its name or "path/name", completed with the webhook's own partition and account.
// Those come from STS GetCallerIdentity (awsIdentity), retried in the background; until they
// are known such a role is not injected (irsa.RoleNotComposed).
type composeOptions struct {
	enabled bool
	account atomic.Pointer[irsa.Account]
}

func (c *composeOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.enabled, "compose-role-arn", c.enabled, "allow a role name or path/name in the role-arn annotation and in ConfigMap entries, completed with the partition and account of the webhook's AWS credentials (STS GetCallerIdentity); until those are known such a role is not injected")
}

// known is irsa.Defaults.ComposeAccount.
func (c *composeOptions) known() (irsa.Account, bool) {
	if a := c.account.Load(); a != nil {
		return *a, true
	}
	return irsa.Account{}, false
}

// set records the account once STS has answered.
func (c *composeOptions) set(a irsa.Account) { c.account.Store(&a) }
