package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The mux lets every shard group of a node share one TCP listener. A dialed
// connection starts with a 3-byte header, the magic byte and the big-endian
// shard number; the accept loop reads it and hands the connection to that
// shard's StreamLayer. After the header the connection belongs to Raft's
// NetworkTransport.
const (
	muxMagic         = 0xF5
	muxHeaderLen     = 3
	muxHeaderTimeout = 5 * time.Second
	muxBacklog       = 16 // accepted connections waiting per shard
)

var errMuxClosed = errors.New("raftstore: mux closed")

// Mux accepts connections for all shards on one listener.
type Mux struct {
	ln     net.Listener
	adv    net.Addr
	log    *slog.Logger
	layers []*streamLayer
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	// faults is fault injection for tests: dials to blocked addresses
	// fail, and Block closes the connections already dialed to them.
	faults struct {
		sync.Mutex
		blocked map[string]bool
		conns   map[*faultConn]struct{}
	}
}

// Block makes this node unable to reach the given Raft addresses (a
// network partition, for tests): new dials fail and open connections this
// node dialed to them are closed. Block the reverse direction on the other
// nodes too. Block(nil) heals.
func (m *Mux) Block(addrs []string) {
	m.faults.Lock()
	defer m.faults.Unlock()
	m.faults.blocked = make(map[string]bool, len(addrs))
	for _, a := range addrs {
		m.faults.blocked[a] = true
	}
	for c := range m.faults.conns {
		if m.faults.blocked[c.addr] {
			c.Conn.Close()
			delete(m.faults.conns, c)
		}
	}
}

func (m *Mux) blocked(addr string) bool {
	m.faults.Lock()
	defer m.faults.Unlock()
	return m.faults.blocked[addr]
}

func (m *Mux) track(c net.Conn, addr string) net.Conn {
	m.faults.Lock()
	defer m.faults.Unlock()
	if m.faults.conns == nil {
		m.faults.conns = make(map[*faultConn]struct{})
	}
	fc := &faultConn{Conn: c, addr: addr, m: m}
	m.faults.conns[fc] = struct{}{}
	return fc
}

// faultConn is a dialed connection Block can cut.
type faultConn struct {
	net.Conn
	addr string
	m    *Mux
}

func (c *faultConn) Close() error {
	c.m.faults.Lock()
	delete(c.m.faults.conns, c)
	c.m.faults.Unlock()
	return c.Conn.Close()
}

// NewMux starts accepting on ln for shards groups. adv is the address other
// nodes dial; nil means ln.Addr().
func NewMux(ln net.Listener, adv net.Addr, shards int, log *slog.Logger) *Mux {
	if adv == nil {
		adv = ln.Addr()
	}
	m := &Mux{ln: ln, adv: adv, log: log, done: make(chan struct{})}
	for i := 0; i < shards; i++ {
		m.layers = append(m.layers, &streamLayer{m: m, shard: uint16(i), ch: make(chan net.Conn, muxBacklog)})
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Layer returns the StreamLayer of a shard.
func (m *Mux) Layer(shard int) raft.StreamLayer { return m.layers[shard] }

// Close stops accepting and waits for the accept loop and header readers.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.ln.Close()
		m.wg.Wait()
	})
	return err
}

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Error("raft mux accept", "err", err)
			return
		}
		m.wg.Add(1)
		go m.route(c)
	}
}

// route reads the header with a deadline and hands the connection on. A
// connection whose shard's backlog is full is closed: the dialer retries.
func (m *Mux) route(c net.Conn) {
	defer m.wg.Done()
	var h [muxHeaderLen]byte
	_ = c.SetReadDeadline(time.Now().Add(muxHeaderTimeout))
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != muxMagic {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	shard := int(binary.BigEndian.Uint16(h[1:]))
	if shard >= len(m.layers) {
		m.log.Warn("raft mux: connection for unknown shard", "shard", shard, "remote", c.RemoteAddr())
		c.Close()
		return
	}
	select {
	case m.layers[shard].ch <- c:
	case <-m.done:
		c.Close()
	default:
		c.Close()
	}
}

type streamLayer struct {
	m     *Mux
	shard uint16
	ch    chan net.Conn
}

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.m.done:
		return nil, errMuxClosed
	}
}

// Close is a no-op: the Mux owns the listener and closes it once.
func (l *streamLayer) Close() error { return nil }

func (l *streamLayer) Addr() net.Addr { return l.m.adv }

func (l *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.m.blocked(string(addr)) {
		return nil, fmt.Errorf("raftstore: %s unreachable (fault injected)", addr)
	}
	c, err := net.DialTimeout("tcp", string(addr), timeout)
	if err != nil {
		return nil, err
	}
	h := [muxHeaderLen]byte{muxMagic}
	binary.BigEndian.PutUint16(h[1:], l.shard)
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(h[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("raftstore: mux header to %s: %w", addr, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return l.m.track(c, string(addr)), nil
}
