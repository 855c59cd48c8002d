package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/flashstock/flashstock/cluster"
)

// TestProviderShutdownWhilePublishing stops the provider while its loop is
// busy republishing. A loop that re-read the stop channel after Shutdown
// cleared it waited on a nil channel forever, and a node's SIGTERM drain
// hung in Engine.Close.
func TestProviderShutdownWhilePublishing(t *testing.T) {
	m, err := cluster.Start(cluster.Config{BindAddr: "127.0.0.1:0", Fast: true,
		Meta: cluster.Meta{ID: "n1", ActorSys: "sys-n1", ActorAddr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	for i := range 50 {
		p := NewProvider(m, time.Minute)
		p.republishInterval = time.Microsecond // the loop is nearly always publishing
		c := pcluster.New(actor.NewActorSystem(), pcluster.Configure("t", p, nil, remote.Configure("127.0.0.1", 0)))
		c.Remote = remote.NewRemote(c.ActorSystem, c.Config.RemoteConfig) // not started: publish only reads its block list
		if err := p.StartMember(c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		done := make(chan struct{})
		go func() { _ = p.Shutdown(false); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Shutdown did not return within 5 s", i)
		}
	}
}
