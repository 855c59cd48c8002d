// Package refusal logs the peers a node turns away (a gossip packet
// without the cluster's key, a TLS handshake without the cluster's
// certificate) once per peer and interval, not once per packet: a stranger
// that retries every 200 ms, or floods, costs one log line a minute.
//
// Peers are keyed by port and IP, not IP:port: a TCP peer dials from a new
// port every time, and a stranger refused on gossip and on Raft is two
// facts. Memory is bounded: past peersMax distinct IPs in one
// interval, the table starts over (the worst case is a line per peer and
// interval more, never unbounded growth).
package refusal

import (
	"log/slog"
	"net"
	"sync"
	"time"
)

// peersMax bounds the table of recently logged peers.
const peersMax = 4096

// Log writes one line per refused peer and interval. Its methods are safe
// for concurrent use and never block on anything but its own short lock
// and the logger.
type Log struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu struct {
		sync.Mutex
		peers map[string]*peer
	}
}

type peer struct {
	last       time.Time // when a line was last written for it
	suppressed int       // refusals since then, not logged
}

// New returns a Log that writes to log at most once per peer and interval
// (a minute when interval is 0). now may be nil.
func New(log *slog.Logger, interval time.Duration, now func() time.Time) *Log {
	if interval <= 0 {
		interval = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Log{log: log, interval: interval, now: now}
	l.mu.peers = make(map[string]*peer)
	return l
}

// Refused records that peer (an address "ip:port", "ip" or a net.Addr's
// String) was turned away on port what ("gossip", "raft", "actor") for
// reason. It logs a warning unless the same peer was logged for the same
// port within the interval; the next line says how many refusals were not logged.
func (l *Log) Refused(what, peerAddr, reason string) {
	if l == nil {
		return
	}
	key := what + " " + host(peerAddr)
	now := l.now()
	l.mu.Lock()
	p, ok := l.mu.peers[key]
	if ok && now.Sub(p.last) < l.interval {
		p.suppressed++
		l.mu.Unlock()
		return
	}
	if !ok {
		if len(l.mu.peers) >= peersMax {
			clear(l.mu.peers)
		}
		p = &peer{}
		l.mu.peers[key] = p
	}
	suppressed := p.suppressed
	p.last, p.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn("refused a peer without the cluster's credentials", "port", what, "peer", peerAddr,
		"reason", reason, "also_refused_since_last_line", suppressed, "next_line_after", l.interval)
}

// host returns the IP of "ip:port", or addr itself when it has no port.
func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
