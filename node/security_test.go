package node_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/internal/clustertls"
	"github.com/flashstock/flashstock/node"
)

// The in-process clusters of this package run with the cluster's keys on,
// as production does: every node gets a certificate from one test CA and
// the gossip key file (secure). pkiDir holds them for the whole test
// binary.
var pki struct {
	once   sync.Once
	err    error
	dir    string
	ca     clustertls.PEM
	mu     sync.Mutex
	issued map[string]bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pki.dir != "" {
		os.RemoveAll(pki.dir)
	}
	os.Exit(code)
}

// pkiFiles returns the CA file, and a certificate and key for name, and
// the gossip key file.
func pkiFiles(tb testing.TB, name string) (ca, cert, key, gossip string) {
	tb.Helper()
	pki.once.Do(func() {
		if pki.dir, pki.err = os.MkdirTemp("", "flashstock-pki"); pki.err != nil {
			return
		}
		if pki.ca, pki.err = clustertls.NewCA("node tests", 0, time.Now()); pki.err != nil {
			return
		}
		if _, _, pki.err = clustertls.WriteFiles(pki.dir, "ca", pki.ca, false); pki.err != nil {
			return
		}
		pki.err = os.WriteFile(filepath.Join(pki.dir, "gossip.key"), []byte(newGossipKey(tb)+"\n"), 0o600)
		pki.issued = map[string]bool{}
	})
	if pki.err != nil {
		tb.Fatalf("test PKI: %v", pki.err)
	}
	pki.mu.Lock()
	defer pki.mu.Unlock()
	if !pki.issued[name] {
		c, err := clustertls.Issue(pki.ca, name, []string{"127.0.0.1", "localhost"}, 0, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		if _, _, err := clustertls.WriteFiles(pki.dir, name, c, true); err != nil {
			tb.Fatal(err)
		}
		pki.issued[name] = true
	}
	return filepath.Join(pki.dir, "ca.crt"), filepath.Join(pki.dir, name+".crt"), filepath.Join(pki.dir, name+".key"),
		filepath.Join(pki.dir, "gossip.key")
}

// secure turns on the cluster's keys in a node's configuration.
func secure(tb testing.TB, c *config.Config) {
	tb.Helper()
	c.TLSCA, c.TLSCert, c.TLSKey, c.GossipKeyFile = pkiFiles(tb, c.Name)
}

func newGossipKey(tb testing.TB) string {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k[:])
}

// logs keeps what each node of a test cluster logged (warnings and up),
// and copies it to standard error.
type logs struct {
	mu  sync.Mutex
	buf map[int]*bytes.Buffer
}

type nodeLog struct {
	l *logs
	i int
}

func (w nodeLog) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if w.l.buf == nil {
		w.l.buf = map[int]*bytes.Buffer{}
	}
	if w.l.buf[w.i] == nil {
		w.l.buf[w.i] = &bytes.Buffer{}
	}
	w.l.buf[w.i].Write(p)
	return os.Stderr.Write(p)
}

func (l *logs) writer(i int) io.Writer { return nodeLog{l: l, i: i} }

// of returns what node i logged so far.
func (l *logs) of(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buf[i]; b != nil {
		return b.String()
	}
	return ""
}

// seats returns the shards whose Raft configuration, on node 0, lists id.
func (tc *testCluster) seats(id string) []int {
	var out []int
	st := tc.nodes[0].Store()
	for i := 0; i < st.Shards(); i++ {
		servers, err := st.Shard(i).Servers()
		if err != nil {
			continue
		}
		for _, s := range servers {
			if s.ID == id {
				out = append(out, i)
			}
		}
	}
	return out
}

// addNode starts one more node on the cluster, configured like the others
// but for its name, addresses and data dir.
func (tc *testCluster) addNode(name string) *node.Node {
	tc.t.Helper()
	c := tc.cfgs[0]
	c.Name = name
	c.DataDir = tc.t.TempDir()
	c.HTTPAddr, c.RaftAddr, c.GossipAddr, c.ActorAddr = freeAddr(tc.t), freeAddr(tc.t), freeAddr(tc.t), freeAddr(tc.t)
	c.Join = []string{tc.cfgs[0].GossipAddr}
	secure(tc.t, &c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(tc.logs.writer(len(tc.cfgs)), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
	nd, err := node.Start(ctx, c, openMySQL, io.Discard, log)
	if err != nil {
		tc.t.Fatalf("start %s: %v", name, err)
	}
	tc.t.Cleanup(nd.Kill)
	return nd
}

// TestGossipOutsiderGetsNoSeat: a memberlist without the cluster's gossip
// key, or with another key, is never seen as a member and never gets a
// Raft seat, although the cluster has a seat to give (two nodes, three
// replicas per shard); a node with the keys gets one in every shard (the
// control: the same wait would have seated an outsider the cluster saw).
// Each node logs the refusals once per peer, not once per packet.
func TestGossipOutsiderGetsNoSeat(t *testing.T) {
	tc := newTestClusterWith(t, 2, nil, func(c *config.Config) { c.Replicas = 3 })
	seed := tc.cfgs[0].GossipAddr
	outsider := func(id string, keys [][]byte) *cluster.Membership {
		m, err := cluster.Start(cluster.Config{
			BindAddr: freeAddr(t), Join: []string{seed}, Fast: true, Keys: keys,
			Meta: cluster.Meta{ID: id, RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t), ActorAddr: freeAddr(t), Role: "node", Bootstrapped: true},
		})
		if err != nil {
			t.Fatalf("outsider %s: %v", id, err)
		}
		t.Cleanup(func() { m.Shutdown() })
		// Knock again and again: still one log line per node.
		for i := 0; i < 5; i++ {
			if n, err := m.Join([]string{seed, tc.cfgs[1].GossipAddr}); n != 0 || err == nil {
				t.Fatalf("outsider %s joined %d nodes (err %v); want none", id, n, err)
			}
		}
		return m
	}
	wrong, _ := config.ParseGossipKeys(newGossipKey(t))
	outsiders := []*cluster.Membership{outsider("no-key", nil), outsider("wrong-key", wrong)}

	// The reconciler seats a member seen alive for 3 s; give it twice that.
	time.Sleep(6 * time.Second)
	for i, nd := range tc.nodes {
		for _, mb := range nd.Members().Members() {
			if mb.ID == "no-key" || mb.ID == "wrong-key" {
				t.Errorf("n%d sees outsider %s (%s)", i, mb.ID, mb.State)
			}
		}
	}
	for _, id := range []string{"no-key", "wrong-key"} {
		if s := tc.seats(id); len(s) > 0 {
			t.Errorf("outsider %s has Raft seats in shards %v", id, s)
		}
	}
	for _, o := range outsiders {
		if got := len(o.Alive()); got != 1 {
			t.Errorf("outsider %s sees %d members; want itself only", o.Self().ID, got)
		}
	}
	for i := range tc.nodes {
		got := strings.Count(tc.logs.of(i), "port=gossip")
		if got != 1 {
			t.Errorf("n%d logged %d gossip refusals for one peer address knocking 10 times; want 1:\n%s", i, got, tc.logs.of(i))
		}
		if !strings.Contains(tc.logs.of(i), "peer=127.0.0.1:") {
			t.Errorf("n%d's refusal does not name the peer:\n%s", i, tc.logs.of(i))
		}
	}

	// The control: a node with the keys is seen and seated.
	tc.addNode("n2")
	waitFor(t, 30*time.Second, "n2 seated in every shard", func() bool {
		return len(tc.seats("n2")) == tc.cfgs[0].Shards
	})
}

// TestClusterPortsRefuseStrangers: on a secured node's Raft and actor
// ports, a certificate from another CA cannot complete a handshake, and
// plain TCP or plain gRPC gets nothing; a member's certificate can. Each
// refusal is logged once per peer and port.
func TestClusterPortsRefuseStrangers(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	raftAddr, actorAddr := tc.nodes[0].Store().Addr(), tc.nodes[0].Engine().ActorAddr()

	strangerCA, err := clustertls.NewCA("stranger", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stranger, _ := clustertls.Issue(strangerCA, "n1", []string{"127.0.0.1"}, 0, time.Now()) // a member's name, another CA
	clustertls.WriteFiles(dir, "ca", strangerCA, false)
	cp, kp, _ := clustertls.WriteFiles(dir, "n1", stranger, false)
	strangerTLS, err := clustertls.Load(clustertls.Config{CAFile: filepath.Join(dir, "ca.crt"), CertFile: cp, KeyFile: kp})
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key, _ := pkiFiles(t, "n7")
	memberTLS, err := clustertls.Load(clustertls.Config{CAFile: ca, CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}

	// Raft: the mux header and an AppendEntries-shaped payload.
	raftProbe := func(c net.Conn) error {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte{0xF5, 0, 0, 0, 0x81, 0xa4, 'T', 'e', 'r', 'm', 9}); err != nil {
			return err
		}
		_, err := c.Read(make([]byte, 1))
		return err
	}
	for i := 0; i < 5; i++ {
		if c, err := strangerTLS.Dial(raftAddr, 3*time.Second); err == nil {
			if raftProbe(c) == nil {
				t.Fatal("raft: a certificate from another CA got an answer")
			}
		}
		plain, err := net.DialTimeout("tcp", raftAddr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := raftProbe(plain); err == nil {
			t.Fatal("raft: plain TCP got an answer")
		}
	}
	if c, err := memberTLS.Dial(raftAddr, 3*time.Second); err != nil {
		t.Fatalf("raft: a member's certificate: %v", err)
	} else {
		c.Close()
	}

	// Actors: protoactor's Receive stream, its connect handshake answered
	// only for a member.
	actorProbe := func(opt grpc.DialOption) error {
		conn, err := grpc.Dial(actorAddr, opt)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		stream, err := remote.NewRemotingClient(conn).Receive(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: &remote.ConnectRequest{
			ConnectionType: &remote.ConnectRequest_ServerConnection{ServerConnection: &remote.ServerConnection{SystemId: "probe", Address: "127.0.0.1:1"}}}}}); err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	for i := 0; i < 5; i++ {
		if err := actorProbe(grpc.WithTransportCredentials(strangerTLS.Credentials())); err == nil {
			t.Fatal("actor: a certificate from another CA got a connect response")
		}
		if err := actorProbe(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
			t.Fatal("actor: plain gRPC got a connect response")
		}
	}
	if err := actorProbe(grpc.WithTransportCredentials(memberTLS.Credentials())); err != nil {
		t.Fatalf("actor: a member's certificate: %v", err)
	}

	logged := tc.logs.of(0)
	for _, port := range []string{"port=raft", "port=actor"} {
		if got := strings.Count(logged, port); got != 1 {
			t.Errorf("n0 logged %d %s refusals for 20 attempts from one address; want 1:\n%s", got, port, logged)
		}
	}
	// And the cluster sells as before.
	tc.mustDo(1, "POST", "/v1/items", "admin", map[string]any{"id": "still", "stock": 10}, 201)
	for i := range tc.nodes {
		tc.mustBuy(i, "still", fmt.Sprintf("u%d", i))
	}
}
