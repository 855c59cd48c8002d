//go:build !race

// These tests speak raw gRPC to a node's actor port. They run without the
// race detector (make e2e runs them): protoactor's Remote.Start sets gRPC's
// global logger with no lock, and a client transport a test closed may
// still read it, unsynchronised, when the next test starts its node. A
// node starts its remote once, so that race is one of test order only, but
// -race reports it in whichever test comes next.

package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flashstock/flashstock/actors/enginetest"
	"github.com/flashstock/flashstock/sale"
)

// TestActorPortSurvivesDiagnostics: protoactor's unary diagnostics panic
// ("implement me"), which used to end the node's process on one call from
// anyone who reached the actor port. They are refused now, and the node
// goes on.
func TestActorPortSurvivesDiagnostics(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{})
	conn, err := grpc.Dial(n.Engine.ActorAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := remote.NewRemotingClient(conn)
	if _, err := rc.ListProcesses(ctx, &remote.ListProcessesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListProcesses = %v; want Unimplemented", err)
	}
	if _, err := rc.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("GetProcessDiagnostics = %v; want Unimplemented", err)
	}
	n.CreateItem(t, sale.Item{ID: "alive", Stock: 1, PerUserLimit: 1}) // the node still serves
}

// TestActorPortSurvivesBadBatches: message batches that make protoactor's
// reader index out of range or dereference nil (an unknown type, a target
// or serializer that does not exist) end their stream, not the process.
func TestActorPortSurvivesBadBatches(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{})
	conn, err := grpc.Dial(n.Engine.ActorAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := &actor.PID{Address: n.Engine.ActorAddr(), Id: "nobody"}
	for i, batch := range []*remote.MessageBatch{
		{TypeNames: []string{"no.such.Type"}, Targets: []*actor.PID{target}, Envelopes: []*remote.MessageEnvelope{{MessageData: []byte{8, 1}}}},
		{TypeNames: []string{"actor.PID"}, Targets: []*actor.PID{target}, Envelopes: []*remote.MessageEnvelope{{Target: 7}}},
		{TypeNames: []string{"actor.PID"}, Targets: []*actor.PID{target}, Envelopes: []*remote.MessageEnvelope{{TypeId: 3}}},
		{TypeNames: []string{"actor.PID"}, Targets: []*actor.PID{target}, Envelopes: []*remote.MessageEnvelope{{SerializerId: 99}}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stream, err := remote.NewRemotingClient(conn).Receive(ctx)
		if err != nil {
			cancel()
			t.Fatalf("batch %d: Receive: %v", i, err)
		}
		if err := stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
			cancel()
			t.Fatalf("batch %d: Send: %v", i, err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.Internal {
			t.Errorf("batch %d: Recv = %v; want the stream ended with Internal", i, err)
		}
		cancel()
	}
	n.CreateItem(t, sale.Item{ID: "alive", Stock: 1, PerUserLimit: 1}) // the node still serves
}
