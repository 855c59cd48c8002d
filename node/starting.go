package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// A node opens its HTTP port at the start of Start, before it waits for
// its peers (--bootstrap-expect) and before its shard groups exist, so that
// an orchestrator's liveness probe sees a live process rather than a
// refused connection and does not kill a node that waits for the others.
// Until the API is up, the port answers /healthz 200 {"status":"starting"}
// and everything else 503 with a JSON error: not ready, nothing served.
// Then the API takes the same listener over.

// startingServer serves the HTTP port while the node starts.
type startingServer struct {
	srv  *http.Server
	ln   *net.TCPListener
	done chan struct{} // closed when Serve has returned
	once sync.Once
}

// keptListener is the node's listener as the starting server sees it: its
// Close does not close the port, which the API serves next, but sets an
// accept deadline in the past, so that the starting server's blocked
// Accept returns and its Serve ends (a shut-down http.Server returns on
// the first Accept error); stop clears the deadline again.
type keptListener struct{ *net.TCPListener }

func (l keptListener) Close() error { return l.SetDeadline(time.Unix(1, 0)) }

func serveStarting(ln net.Listener) *startingServer {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"starting"}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, `{"error":{"code":"unavailable","message":"the node is starting: waiting for its peers or its shard groups"}}`)
	})
	s := &startingServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	tcp, _ := ln.(*net.TCPListener) // net.Listen("tcp", ...) always is one
	s.ln = tcp
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(keptListener{tcp}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return // the listener failed: the API's Serve will say so
		}
	}()
	return s
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}

// stop stops the starting server (its requests in flight get their
// answer, for at most 2 s) and returns once it no longer accepts, leaving
// the listener open. It may be called more than once.
func (s *startingServer) stop() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(ctx)
		<-s.done
		_ = s.ln.SetDeadline(time.Time{})
	})
}
