package faults

import (
	"io"
	"net"
	"sync"
	"time"
)

// forwarder relays TCP connections from the subnet to MariaDB, which
// scripts/mariadb.sh binds to 127.0.0.1 only. While MariaDB is down a new
// connection is accepted and closed at once, and open ones end when
// MariaDB closes them, as a client of the real server would see.
type forwarder struct {
	ln     net.Listener
	target string
	mu     struct {
		sync.Mutex
		conns  map[net.Conn]struct{}
		closed bool
	}
	wg sync.WaitGroup
}

func startForwarder(listen, target string) (*forwarder, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, target: target}
	f.mu.conns = map[net.Conn]struct{}{}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

// track adds c to the open connections, or closes it after Close.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mu.closed {
		c.Close()
		return false
	}
	f.mu.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.mu.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) relay(c net.Conn) {
	defer f.wg.Done()
	if !f.track(c) {
		return
	}
	defer f.untrack(c)
	up, err := net.DialTimeout("tcp", f.target, 2*time.Second)
	if err != nil {
		return
	}
	if !f.track(up) {
		return
	}
	defer f.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other direction can drain, then let the
		// deferred closes end both.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	// One side ended: give the other a moment, then close both.
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// Close stops accepting, closes every relayed connection and waits for the
// relays.
func (f *forwarder) Close() {
	f.ln.Close()
	f.mu.Lock()
	f.mu.closed = true
	for c := range f.mu.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
