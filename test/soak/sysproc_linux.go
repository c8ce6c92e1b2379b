package main

import "syscall"

// childSysProcAttr makes the kernel SIGKILL the webhook when the thread that started it exits,
// so an interrupted soak leaves nothing running.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
