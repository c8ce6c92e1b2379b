package controlplane

import "syscall"

// childSysProcAttr makes the kernel SIGKILL a child when the thread that started it exits, so a
// test binary that panics or times out leaves no etcd, kube-apiserver or webhook running. The
// starting goroutine must lock its thread until the child exits (see StartChild): the
// signal follows the thread that forked, not the process.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
