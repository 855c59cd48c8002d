// Package mux lets every Raft shard group of a node share one listener.
//
// A dialed connection starts with a 3-byte header: the magic byte 0xF5 and
// the big-endian shard number. The Listener's accept loop reads the header
// (within a deadline) and hands the connection to that shard's
// raft.StreamLayer; after the header the connection belongs to the shard's
// raft.NetworkTransport. A connection with a bad header, or for a shard
// that does not exist, is closed, as is one whose shard has a full backlog
// of accepted connections: the dialer retries.
//
// The two network seams are explicit, so that another transport (TLS) wraps
// them without changes here: New takes the net.Listener to accept on, and
// Config.Dial is the Dialer the stream layers dial peers with. The header
// is written and read on whatever connection they return.
//
// Block is fault injection for tests: it cuts this node's Raft traffic to
// chosen addresses (raftstore.Store.Block, raftstoretest's Partition).
package mux

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

const (
	magic         = 0xF5
	headerLen     = 3
	headerTimeout = 5 * time.Second
	backlog       = 16 // accepted connections waiting per shard
)

// errClosed is what a stream layer's Accept returns once the Listener is
// closed.
var errClosed = errors.New("mux: closed")

// Dialer opens a connection to a peer's Raft address within timeout.
type Dialer func(addr string, timeout time.Duration) (net.Conn, error)

// DialTCP is the default Dialer: a plain TCP connection.
func DialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// Config configures a Listener.
type Config struct {
	// Shards is the number of stream layers, one per shard group; at most
	// 65536 (the header carries a uint16).
	Shards int
	// Advertise is the address other nodes dial; nil means the listener's
	// own address.
	Advertise net.Addr
	// Dial opens connections to peers; nil means DialTCP.
	Dial Dialer
	// Logger receives accept errors and connections for unknown shards;
	// nil discards.
	Logger *slog.Logger
}

// Listener accepts Raft connections for all shards on one net.Listener and
// gives each shard a raft.StreamLayer. Its methods are safe for concurrent
// use.
type Listener struct {
	ln     net.Listener
	adv    net.Addr
	dial   Dialer
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

// New starts accepting on ln. The Listener owns ln from here on: Close
// closes it.
func New(ln net.Listener, cfg Config) *Listener {
	adv := cfg.Advertise
	if adv == nil {
		adv = ln.Addr()
	}
	dial := cfg.Dial
	if dial == nil {
		dial = DialTCP
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Listener{ln: ln, adv: adv, dial: dial, log: log, done: make(chan struct{})}
	for i := 0; i < cfg.Shards; i++ {
		m.layers = append(m.layers, &streamLayer{m: m, shard: uint16(i), ch: make(chan net.Conn, backlog)})
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m
}

// Layer returns the StreamLayer of a shard.
func (m *Listener) Layer(shard int) raft.StreamLayer { return m.layers[shard] }

// Addr returns the address other nodes dial.
func (m *Listener) Addr() net.Addr { return m.adv }

// Close stops accepting and waits for the accept loop and header readers.
func (m *Listener) Close() error {
	var err error
	m.once.Do(func() {
		close(m.done)
		err = m.ln.Close()
		m.wg.Wait()
	})
	return err
}

// Block makes this node unable to reach the given Raft addresses (a
// network partition, for tests): new dials fail, and so do dials under
// way, and open connections this node dialed to them are closed. Block the
// reverse direction on the other nodes too. Block(nil) heals.
func (m *Listener) Block(addrs []string) {
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

func (m *Listener) blocked(addr string) bool {
	m.faults.Lock()
	defer m.faults.Unlock()
	return m.faults.blocked[addr]
}

// track registers a dialed connection so that Block can cut it. A dial
// that was under way when Block cut its address is closed here instead:
// checked under the lock Block holds, it cannot slip past the partition.
func (m *Listener) track(c net.Conn, addr string) (net.Conn, error) {
	m.faults.Lock()
	defer m.faults.Unlock()
	if m.faults.blocked[addr] {
		c.Close()
		return nil, fmt.Errorf("mux: %s unreachable (fault injected)", addr)
	}
	if m.faults.conns == nil {
		m.faults.conns = make(map[*faultConn]struct{})
	}
	fc := &faultConn{Conn: c, addr: addr, m: m}
	m.faults.conns[fc] = struct{}{}
	return fc, nil
}

// faultConn is a dialed connection Block can cut.
type faultConn struct {
	net.Conn
	addr string
	m    *Listener
}

func (c *faultConn) Close() error {
	c.m.faults.Lock()
	delete(c.m.faults.conns, c)
	c.m.faults.Unlock()
	return c.Conn.Close()
}

func (m *Listener) acceptLoop() {
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
func (m *Listener) route(c net.Conn) {
	defer m.wg.Done()
	var h [headerLen]byte
	_ = c.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != magic {
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

// streamLayer is one shard's raft.StreamLayer: its Accept takes the
// connections route handed to the shard, its Dial writes the shard's
// header.
type streamLayer struct {
	m     *Listener
	shard uint16
	ch    chan net.Conn
}

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.m.done:
		return nil, errClosed
	}
}

// Close is a no-op: the Listener owns the net.Listener and closes it once.
func (l *streamLayer) Close() error { return nil }

func (l *streamLayer) Addr() net.Addr { return l.m.adv }

func (l *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.m.blocked(string(addr)) {
		return nil, fmt.Errorf("mux: %s unreachable (fault injected)", addr)
	}
	c, err := l.m.dial(string(addr), timeout)
	if err != nil {
		return nil, err
	}
	if c, err = l.m.track(c, string(addr)); err != nil {
		return nil, err
	}
	h := [headerLen]byte{magic}
	binary.BigEndian.PutUint16(h[1:], l.shard)
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(h[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("mux: header to %s: %w", addr, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}
