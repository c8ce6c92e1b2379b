//go:build !linux

package webhookproc

import "syscall"

// childSysProcAttr: only Linux has a parent-death signal; elsewhere the webhook is stopped by
// Stop only.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
