package controlplane

import "syscall"

// childSysProcAttr makes the kernel SIGKILL a child when the thread that started it exits, so a
// test binary that panics or times out does not leave etcd and kube-apiserver running. The
// starting goroutine locks its thread until the child exits (see startProcess).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
