//go:build linux

package faults

import "syscall"

// childAttr makes a node die with the suite (even on SIGKILL of the suite)
// and puts it in its own process group.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
