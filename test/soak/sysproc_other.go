//go:build !linux

package main

import "syscall"

// childSysProcAttr: only Linux has a parent-death signal.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
