//go:build !linux

package faults

import (
	"errors"
	"syscall"
	"time"
)

// The suite runs on Linux only (Setup says so); these stubs let the package
// build elsewhere.

func childAttr() *syscall.SysProcAttr { return nil }

// DelayerConfig is the netem-like behaviour of a Delayer.
type DelayerConfig struct {
	Delay, Jitter time.Duration
	Loss          float64
}

// Delayer is Linux-only.
type Delayer struct{}

// StartDelayer is Linux-only.
func StartDelayer(string, uint16, DelayerConfig) (*Delayer, error) {
	return nil, errors.New("nfqueue: Linux only")
}

// Stop does nothing.
func (*Delayer) Stop() {}

// Stats returns zeros.
func (*Delayer) Stats() (int64, int64) { return 0, 0 }
