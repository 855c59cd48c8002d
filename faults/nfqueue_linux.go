//go:build linux

package faults

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file is the userspace stand-in for `tc qdisc ... netem delay D J loss
// L%` on kernels built without sch_netem: an iptables NFQUEUE rule hands every
// packet a namespace sends to a netlink socket, and a Delayer gives the
// verdict after D±J (uniform, like netem without a distribution table) or
// drops it with probability L. It speaks the nfnetlink_queue protocol with
// the standard library only.

// nfnetlink constants (linux/netfilter/nfnetlink.h, nfnetlink_queue.h).
const (
	nfnlSubsysQueue    = 3
	nfqnlMsgPacket     = 0
	nfqnlMsgVerdict    = 1
	nfqnlMsgConfig     = 2
	nfqaPacketHdr      = 1
	nfqaVerdictHdr     = 2
	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5
	nfqnlCfgCmdBind    = 1
	nfqnlCopyMeta      = 1
	nfqaCfgFFailOpen   = 1
	nfDrop             = 0
	nfAccept           = 1
	nlmFRequest        = 1
	nlmFAck            = 4
	nlmsgError         = 2
	solNetlink         = 270
	netlinkNoENOBUFS   = 5
	nlmsgHdrLen        = 16
)

// nfqueueMaxlen bounds the packets the kernel holds for the Delayer; with
// fail-open, packets beyond it pass undelayed rather than being dropped.
const nfqueueMaxlen = 16384

// DelayerConfig is the netem-like behaviour of a Delayer.
type DelayerConfig struct {
	Delay  time.Duration // mean added delay
	Jitter time.Duration // uniform ± around Delay
	Loss   float64       // probability in [0, 1) of dropping a packet
}

// Delayer holds the packets of one NFQUEUE queue in one network namespace.
type Delayer struct {
	cfg      DelayerConfig
	fd       int
	queue    uint16
	seq      atomic.Uint32
	stopping atomic.Bool
	inflight sync.WaitGroup // verdicts scheduled but not sent
	done     chan struct{}  // closed when the reader exits
	packets  atomic.Int64
	dropped  atomic.Int64
}

// StartDelayer binds NFQUEUE queue in the network namespace named ns (a name
// under /run/netns) and starts delaying the packets queued to it. The caller
// adds the rule that queues packets, and removes it before Stop.
func StartDelayer(ns string, queue uint16, cfg DelayerConfig) (*Delayer, error) {
	fd, err := socketInNetns(ns, syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: netlink socket in %s: %w", ns, err)
	}
	d := &Delayer{cfg: cfg, fd: fd, queue: queue, done: make(chan struct{})}
	fail := func(err error) (*Delayer, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf("nfqueue: %s queue %d: %w", ns, queue, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fail(err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 16<<20)
	_ = syscall.SetsockoptInt(fd, solNetlink, netlinkNoENOBUFS, 1)
	// A receive timeout lets the reader notice Stop.
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fail(err)
	}
	cmd := []byte{nfqnlCfgCmdBind, 0, 0, 0}
	binary.BigEndian.PutUint16(cmd[2:], syscall.AF_INET)
	if err := d.request(nfqnlMsgConfig, syscall.AF_INET, nlattr(nfqaCfgCmd, cmd)); err != nil {
		return fail(fmt.Errorf("bind: %w", err))
	}
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, 0) // copy range: headers only
	params[4] = nfqnlCopyMeta
	maxlen := binary.BigEndian.AppendUint32(nil, nfqueueMaxlen)
	flags := binary.BigEndian.AppendUint32(nil, nfqaCfgFFailOpen)
	attrs := append(nlattr(nfqaCfgParams, params), nlattr(nfqaCfgQueueMaxlen, maxlen)...)
	attrs = append(attrs, nlattr(nfqaCfgMask, flags)...)
	attrs = append(attrs, nlattr(nfqaCfgFlags, flags)...)
	if err := d.request(nfqnlMsgConfig, syscall.AF_UNSPEC, attrs); err != nil {
		return fail(fmt.Errorf("params: %w", err))
	}
	go d.read()
	return d, nil
}

// Stats returns the packets seen and dropped so far.
func (d *Delayer) Stats() (packets, dropped int64) { return d.packets.Load(), d.dropped.Load() }

// Stop lets every held packet go (packets still arriving pass at once),
// waits until the queue has been quiet for one receive timeout, and closes
// the socket. Remove the queueing rule first.
func (d *Delayer) Stop() {
	d.stopping.Store(true)
	<-d.done
	d.inflight.Wait()
	syscall.Close(d.fd)
}

// read receives queued packets and schedules their verdicts.
func (d *Delayer) read() {
	defer close(d.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(d.fd, buf, 0)
		if err != nil {
			// After Stop, the first quiet receive timeout means the queue
			// is empty (the rule that fed it is gone).
			if errors.Is(err, syscall.EAGAIN) && d.stopping.Load() {
				return
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOBUFS) {
				continue
			}
			return
		}
		for msgs := buf[:n]; len(msgs) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(msgs))
			if l < nlmsgHdrLen || l > len(msgs) {
				break
			}
			typ := binary.NativeEndian.Uint16(msgs[4:])
			if typ == nfnlSubsysQueue<<8|nfqnlMsgPacket && l >= nlmsgHdrLen+4 {
				if id, ok := packetID(msgs[nlmsgHdrLen+4 : l]); ok {
					d.schedule(id)
				}
			}
			msgs = msgs[min(align4(l), len(msgs)):]
		}
	}
}

// schedule gives packet id its verdict after the configured delay.
func (d *Delayer) schedule(id uint32) {
	d.packets.Add(1)
	if d.stopping.Load() {
		_ = d.verdict(id, nfAccept)
		return
	}
	if d.cfg.Loss > 0 && rand.Float64() < d.cfg.Loss {
		d.dropped.Add(1)
		_ = d.verdict(id, nfDrop)
		return
	}
	delay := d.cfg.Delay
	if d.cfg.Jitter > 0 {
		delay += time.Duration(rand.Int64N(int64(2*d.cfg.Jitter))) - d.cfg.Jitter
	}
	d.inflight.Add(1)
	time.AfterFunc(max(delay, 0), func() {
		defer d.inflight.Done()
		_ = d.verdict(id, nfAccept)
	})
}

func (d *Delayer) verdict(id uint32, v uint32) error {
	hdr := binary.BigEndian.AppendUint32(nil, v)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	return d.send(nfqnlMsgVerdict, syscall.AF_UNSPEC, nlattr(nfqaVerdictHdr, hdr), 0)
}

// request sends a config message and waits for its acknowledgement.
func (d *Delayer) request(msgType uint16, family uint8, attrs []byte) error {
	if err := d.send(msgType, family, attrs, nlmFAck); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := syscall.Recvfrom(d.fd, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return err
		}
		if n < nlmsgHdrLen+4 || binary.NativeEndian.Uint16(buf[4:]) != nlmsgError {
			continue
		}
		if errno := int32(binary.NativeEndian.Uint32(buf[nlmsgHdrLen:])); errno != 0 {
			return syscall.Errno(-errno)
		}
		return nil
	}
	return errors.New("no acknowledgement within 2s")
}

func (d *Delayer) send(msgType uint16, family uint8, attrs []byte, flags uint16) error {
	msg := make([]byte, nlmsgHdrLen+4, nlmsgHdrLen+4+len(attrs))
	binary.NativeEndian.PutUint16(msg[4:], nfnlSubsysQueue<<8|msgType)
	binary.NativeEndian.PutUint16(msg[6:], nlmFRequest|flags)
	binary.NativeEndian.PutUint32(msg[8:], d.seq.Add(1))
	msg[nlmsgHdrLen] = family
	binary.BigEndian.PutUint16(msg[nlmsgHdrLen+2:], d.queue)
	msg = append(msg, attrs...)
	binary.NativeEndian.PutUint32(msg, uint32(len(msg)))
	return syscall.Sendto(d.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK})
}

// nlattr encodes one netlink attribute, padded to 4 bytes.
func nlattr(typ uint16, payload []byte) []byte {
	b := make([]byte, 4, align4(4+len(payload)))
	binary.NativeEndian.PutUint16(b, uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// packetID finds NFQA_PACKET_HDR in the attributes of a packet message.
func packetID(attrs []byte) (uint32, bool) {
	for len(attrs) >= 4 {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:]) & 0x3fff
		if l < 4 || l > len(attrs) {
			return 0, false
		}
		if typ == nfqaPacketHdr && l >= 8 {
			return binary.BigEndian.Uint32(attrs[4:]), true
		}
		attrs = attrs[min(align4(l), len(attrs)):]
	}
	return 0, false
}

func align4(n int) int { return (n + 3) &^ 3 }

// setnsSyscall is setns(2)'s number; package syscall names it on few
// architectures.
func setnsSyscall() (uintptr, error) {
	switch runtime.GOARCH {
	case "amd64":
		return 308, nil
	case "arm64", "riscv64", "loong64":
		return 268, nil
	case "386":
		return 346, nil
	case "arm":
		return 375, nil
	case "ppc64", "ppc64le":
		return 350, nil
	case "s390x":
		return 339, nil
	}
	return 0, fmt.Errorf("setns: unknown syscall number on %s", runtime.GOARCH)
}

// socketInNetns creates a socket in the named network namespace: a socket
// stays in the namespace it was created in, so only the creating thread has
// to switch, and it switches back before it is unlocked.
func socketInNetns(ns string, domain, typ, proto int) (int, error) {
	nr, err := setnsSyscall()
	if err != nil {
		return -1, err
	}
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return -1, err
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer self.Close()
	if _, _, e := syscall.RawSyscall(nr, target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("setns %s: %w", ns, e)
	}
	fd, sockErr := syscall.Socket(domain, typ, proto)
	if _, _, e := syscall.RawSyscall(nr, self.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		// The thread is stuck in the other namespace: leave it locked so
		// the runtime retires it when this goroutine ends.
		if sockErr == nil {
			syscall.Close(fd)
		}
		return -1, fmt.Errorf("setns back: %w", e)
	}
	runtime.UnlockOSThread()
	return fd, sockErr
}
