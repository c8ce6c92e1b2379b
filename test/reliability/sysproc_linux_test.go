package reliability_test

import "syscall"

// childSysProcAttr makes the kernel SIGKILL a webhook started by startServe when the thread
// that started it exits, so a test binary that panics or times out leaves nothing running.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
