//go:build !linux

package reliability_test

import "syscall"

// childSysProcAttr: only Linux has a parent-death signal.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
