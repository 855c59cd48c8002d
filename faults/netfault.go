package faults

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// firewall cuts and restores traffic inside one node's namespace. Each
// namespace is the node's own, so rules never touch the host's firewall.
type firewall interface {
	name() string
	// isolate drops every packet between the namespace and peers, or
	// with tcpPort > 0 only TCP to or from that port (one protocol cut,
	// the others still flowing).
	isolate(ctx context.Context, e *Env, node int, peers []string, tcpPort int) error
	// queue hands every packet the namespace sends on eth0 to NFQUEUE q
	// (with bypass: packets pass if nobody listens).
	queue(ctx context.Context, e *Env, node int, q int) error
	// heal removes every rule isolate and queue added; idempotent.
	heal(ctx context.Context, e *Env, node int) error
}

// pickFirewall prefers iptables (its NFQUEUE target works through the
// kernel's xtables compatibility even where nft's queue expression is not
// built), else nft.
func pickFirewall() (firewall, error) {
	if _, err := lookPath("iptables"); err == nil {
		return iptablesFirewall{}, nil
	}
	if _, err := lookPath("nft"); err == nil {
		return nftFirewall{}, nil
	}
	return nil, fmt.Errorf("%w: neither iptables nor nft found; apt-get install -y iptables", ErrEnvironment)
}

type iptablesFirewall struct{}

const (
	iptFaultChain = "FLASHSTOCK_FAULT"
	iptDelayChain = "FLASHSTOCK_DELAY"
)

func (iptablesFirewall) name() string { return "iptables" }

func (f iptablesFirewall) ipt(ctx context.Context, e *Env, node int, args ...string) error {
	_, err := e.inNS(ctx, node, "iptables", append([]string{"-w", "5"}, args...)...)
	return err
}

func (f iptablesFirewall) isolate(ctx context.Context, e *Env, node int, peers []string, tcpPort int) error {
	if err := f.ipt(ctx, e, node, "-N", iptFaultChain); err != nil {
		return err
	}
	var matches [][]string // what to drop, besides the peer's address
	if tcpPort > 0 {
		port := strconv.Itoa(tcpPort)
		matches = [][]string{{"-p", "tcp", "--dport", port}, {"-p", "tcp", "--sport", port}}
	} else {
		matches = [][]string{nil}
	}
	for _, p := range peers {
		for _, dir := range []string{"-s", "-d"} {
			for _, m := range matches {
				args := append([]string{"-A", iptFaultChain, dir, p}, m...)
				if err := f.ipt(ctx, e, node, append(args, "-j", "DROP")...); err != nil {
					return err
				}
			}
		}
	}
	// The jumps last: the cut starts in both directions at once.
	if err := f.ipt(ctx, e, node, "-I", "INPUT", "1", "-j", iptFaultChain); err != nil {
		return err
	}
	return f.ipt(ctx, e, node, "-I", "OUTPUT", "1", "-j", iptFaultChain)
}

func (f iptablesFirewall) queue(ctx context.Context, e *Env, node int, q int) error {
	if err := f.ipt(ctx, e, node, "-N", iptDelayChain); err != nil {
		return err
	}
	if err := f.ipt(ctx, e, node, "-A", iptDelayChain, "-o", "eth0", "-j", "NFQUEUE",
		"--queue-num", strconv.Itoa(q), "--queue-bypass"); err != nil {
		return err
	}
	return f.ipt(ctx, e, node, "-A", "OUTPUT", "-j", iptDelayChain)
}

func (f iptablesFirewall) heal(ctx context.Context, e *Env, node int) error {
	out, err := e.inNS(ctx, node, "iptables", "-w", "5", "-S")
	if err != nil {
		return err
	}
	var errs []error
	for _, chain := range []string{iptFaultChain, iptDelayChain} {
		if !strings.Contains(out, chain) {
			continue
		}
		for _, hook := range []string{"INPUT", "OUTPUT"} {
			// Delete every jump to the chain (there is at most one).
			for range 4 {
				if f.ipt(ctx, e, node, "-D", hook, "-j", chain) != nil {
					break
				}
			}
		}
		errs = append(errs, f.ipt(ctx, e, node, "-F", chain), f.ipt(ctx, e, node, "-X", chain))
	}
	return errors.Join(errs...)
}

type nftFirewall struct{}

func (nftFirewall) name() string { return "nft" }

func (nftFirewall) isolate(ctx context.Context, e *Env, node int, peers []string, tcpPort int) error {
	set := strings.Join(peers, ", ")
	rule := func(dir string) string {
		if tcpPort > 0 {
			return fmt.Sprintf("ip %s { %s } tcp dport %d drop; ip %s { %s } tcp sport %d drop;", dir, set, tcpPort, dir, set, tcpPort)
		}
		return fmt.Sprintf("ip %s { %s } drop;", dir, set)
	}
	script := fmt.Sprintf(`table inet flashstock_fault {
  chain input { type filter hook input priority -10; policy accept; %s }
  chain output { type filter hook output priority -10; policy accept; %s }
}
`, rule("saddr"), rule("daddr"))
	_, err := e.inNSStdin(ctx, node, script, "nft", "-f", "-")
	return err
}

func (nftFirewall) queue(ctx context.Context, e *Env, node int, q int) error {
	script := fmt.Sprintf(`table inet flashstock_delay {
  chain output { type filter hook output priority 0; policy accept; oifname "eth0" queue num %d bypass; }
}
`, q)
	_, err := e.inNSStdin(ctx, node, script, "nft", "-f", "-")
	return err
}

func (nftFirewall) heal(ctx context.Context, e *Env, node int) error {
	out, err := e.inNS(ctx, node, "nft", "list", "tables")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range []string{"flashstock_fault", "flashstock_delay"} {
		if strings.Contains(out, t) {
			_, err := e.inNS(ctx, node, "nft", "delete", "table", "inet", t)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// delayFault is packet delay and loss on every node's outgoing traffic.
type delayFault struct {
	e        *Env
	delayers []*Delayer
}

// startDelay adds delay (50 ms ± 20 ms) and 5 % loss to everything the
// nodes send: tc netem where the kernel has it, else the NFQUEUE delayer.
func (e *Env) startDelay(ctx context.Context) (*delayFault, error) {
	d := &delayFault{e: e}
	for i := 0; i < nodes; i++ {
		if e.delay == "netem" {
			_, err := e.inNS(ctx, i, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
				"delay", delayMean.String(), delayJitter.String(), "loss", strconv.Itoa(delayLossPercent)+"%")
			if err != nil {
				d.stop(ctx)
				return nil, err
			}
			continue
		}
		dl, err := StartDelayer(e.nodeNS(i), delayQueue, DelayerConfig{
			Delay: delayMean, Jitter: delayJitter, Loss: float64(delayLossPercent) / 100,
		})
		if err != nil {
			d.stop(ctx)
			return nil, err
		}
		d.delayers = append(d.delayers, dl)
		if err := e.fw.queue(ctx, e, i, delayQueue); err != nil {
			d.stop(ctx)
			return nil, err
		}
	}
	return d, nil
}

// stop removes the delay; it returns the packets the delayers saw and
// dropped (zero with netem).
func (d *delayFault) stop(ctx context.Context) (packets, dropped int64, err error) {
	var errs []error
	for i := 0; i < nodes; i++ {
		if d.e.delay == "netem" {
			if out, err := d.e.inNS(ctx, i, "tc", "qdisc", "show", "dev", "eth0"); err == nil && strings.Contains(out, "netem") {
				_, err := d.e.inNS(ctx, i, "tc", "qdisc", "del", "dev", "eth0", "root")
				errs = append(errs, err)
			}
			continue
		}
		errs = append(errs, d.e.fw.heal(ctx, d.e, i))
	}
	for _, dl := range d.delayers {
		dl.Stop()
		p, x := dl.Stats()
		packets += p
		dropped += x
	}
	d.delayers = nil
	return packets, dropped, errors.Join(errs...)
}

// healNetwork removes every partition rule, queue rule and qdisc from every
// node namespace.
func (e *Env) healNetwork(ctx context.Context) error {
	var errs []error
	for i := 0; i < nodes; i++ {
		errs = append(errs, e.fw.heal(ctx, e, i))
		if out, err := e.inNS(ctx, i, "tc", "qdisc", "show", "dev", "eth0"); err == nil && strings.Contains(out, "netem") {
			_, err := e.inNS(ctx, i, "tc", "qdisc", "del", "dev", "eth0", "root")
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// inNSStdin runs a command in node i's namespace with stdin.
func (e *Env) inNSStdin(ctx context.Context, i int, stdin string, name string, args ...string) (string, error) {
	return runStdin(ctx, commandTimeout, stdin, "ip", append([]string{"netns", "exec", e.nodeNS(i), name}, args...)...)
}
