package mux_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/mux"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
)

// TestMuxRejectsBadConnections sends what is not a Raft connection to a
// running store's listener: the mux (or, past a valid header, the shard's
// transport) closes it, and Raft does not notice.
func TestMuxRejectsBadConnections(t *testing.T) {
	s := raftstoretest.NewStore(t, 2)
	term := func(i int) string { return s.Shard(i).Raft().Stats()["term"] }
	terms := []string{term(0), term(1)}
	garbage := []byte("GET / HTTP/1.1\r\n\r\n")
	tests := []struct {
		name string
		send []byte
	}{
		{"bad magic", append([]byte{0x00, 0x00, 0x00}, garbage...)},
		{"http request", garbage},
		{"unknown shard", append([]byte{0xF5, 0x00, 0x02}, garbage...)},
		{"shard 65535", []byte{0xF5, 0xFF, 0xFF}},
		{"short header", []byte{0xF5}},
		{"known shard, garbage RPC", append([]byte{0xF5, 0x00, 0x01}, garbage...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatalf("Dial(%s) = %v", s.Addr(), err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatalf("Write = %v", err)
			}
			if tc.name == "short header" {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection sending %q still open after 10s; want it closed", tc.send)
			}
			if n != 0 {
				t.Errorf("server answered %d bytes; want none", n)
			}
		})
	}
	// Raft did not notice: same leaders, same terms, and commands commit.
	for i := 0; i < 2; i++ {
		if got := term(i); got != terms[i] {
			t.Errorf("shard %d term = %s; want %s (no election)", i, got, terms[i])
		}
		id := raftstoretest.ItemIDForShard("after", i, 2)
		if _, err := s.Shard(i).CreateItem(raftstore.CreateItem{ID: id, Stock: 1, PerUserLimit: 1}); err != nil {
			t.Errorf("CreateItem on shard %d after bad connections = %v; want nil", i, err)
		}
	}
	if !s.Ready() {
		t.Errorf("Ready() = false after bad connections; want true")
	}
}

// TestMuxRoutesByShard dials through the mux the way Raft does, and checks
// that each connection reaches the right shard's transport.
func TestMuxRoutesByShard(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New(ln, mux.Config{Shards: 3, Logger: testutil.Logger(t)})
	defer m.Close()
	for shard := 0; shard < 3; shard++ {
		l := m.Layer(shard)
		if got := l.Addr().String(); got != ln.Addr().String() {
			t.Errorf("Layer(%d).Addr() = %s; want %s", shard, got, ln.Addr())
		}
		c, err := l.Dial(raft.ServerAddress(ln.Addr().String()), time.Second)
		if err != nil {
			t.Fatalf("Layer(%d).Dial = %v", shard, err)
		}
		msg := []byte("hello " + strconv.Itoa(shard))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatalf("Layer(%d).Accept = %v", shard, err)
		}
		buf := make([]byte, len(msg))
		_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != string(msg) {
			t.Errorf("Layer(%d) accepted a connection reading %q, %v; want %q", shard, buf, err, msg)
		}
		c.Close()
		sc.Close()
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := m.Layer(0).Accept(); err == nil {
		t.Errorf("Accept after Close = nil error; want an error")
	}
}

// TestMuxDialAndBlock: a stream layer dials through Config.Dial, and Block
// fails new dials without dialing and cuts the connections already dialed
// to the blocked address, until Block(nil).
func TestMuxDialAndBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	dial := func(addr string, timeout time.Duration) (net.Conn, error) {
		dials.Add(1)
		return mux.DialTCP(addr, timeout)
	}
	m := mux.New(ln, mux.Config{Shards: 1, Dial: dial, Logger: testutil.Logger(t)})
	defer m.Close()
	addr := raft.ServerAddress(m.Addr().String())
	l := m.Layer(0)

	c, err := l.Dial(addr, time.Second)
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	defer c.Close()
	if got := dials.Load(); got != 1 {
		t.Errorf("Config.Dial called %d times for one Dial; want 1", got)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept = %v", err)
	}
	defer sc.Close()

	m.Block([]string{string(addr)})
	if _, err := l.Dial(addr, time.Second); err == nil {
		t.Errorf("Dial to a blocked address = nil error; want an error")
	}
	if got := dials.Load(); got != 1 {
		t.Errorf("Config.Dial called %d times in all; want 1 (a blocked dial never dials)", got)
	}
	// The connection dialed before the Block is closed: the other end
	// reads EOF (or a reset), not a timeout.
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read on a connection cut by Block = nil error; want EOF")
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("connection dialed before Block still open after 5s; want it closed")
	}

	m.Block(nil)
	c2, err := l.Dial(addr, time.Second)
	if err != nil {
		t.Fatalf("Dial after Block(nil) = %v; want nil", err)
	}
	c2.Close()
	if got := dials.Load(); got != 2 {
		t.Errorf("Config.Dial called %d times in all; want 2", got)
	}
}

// TestMuxBlockDuringDial: a dial already under way when Block cuts its
// address must not come back as a live connection across the partition.
func TestMuxBlockDuringDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dialing, release := make(chan struct{}), make(chan struct{})
	dial := func(addr string, timeout time.Duration) (net.Conn, error) {
		close(dialing)
		<-release
		return mux.DialTCP(addr, timeout)
	}
	m := mux.New(ln, mux.Config{Shards: 1, Dial: dial, Logger: testutil.Logger(t)})
	defer m.Close()
	addr := raft.ServerAddress(m.Addr().String())
	errc := make(chan error, 1)
	go func() {
		c, err := m.Layer(0).Dial(addr, time.Second)
		if err == nil {
			c.Close()
		}
		errc <- err
	}()
	<-dialing
	m.Block([]string{string(addr)})
	close(release)
	if err := <-errc; err == nil {
		t.Errorf("Dial under way when Block cut its address = nil error; want an error")
	}
}
