//go:build !linux

package controlplane

import "syscall"

// ChildSysProcAttr: only Linux has a parent-death signal; elsewhere children are stopped by Stop
// (and by Main on SIGINT/SIGTERM) only.
func ChildSysProcAttr() *syscall.SysProcAttr { return nil }
