package webhookproc

import "syscall"

// childSysProcAttr makes the kernel SIGKILL the webhook when the thread that started it exits,
// so a test binary that panics or times out does not leave it running. The starting goroutine
// locks its thread until the child exits (see Start).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
