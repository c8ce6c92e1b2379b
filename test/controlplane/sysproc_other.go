//go:build !linux

package controlplane

import "syscall"

// childSysProcAttr: only Linux has a parent-death signal; elsewhere children are stopped by Stop
// (and by Main on SIGINT/SIGTERM) only.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
