package actors

import (
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flashstock/flashstock/sale"
)

// TestRouterDeliversOnceAndDropsLateAnswers: an answer reaches its call
// once; a second answer under the same id, an answer to a forgotten call,
// and messages that are not replies change nothing.
func TestRouterDeliversOnceAndDropsLateAnswers(t *testing.T) {
	r := newRouter()
	a, cha := r.register()
	b, chb := r.register()
	if a == b {
		t.Fatalf("two calls got id %d", a)
	}
	r.forget(b) // the caller of b gave up
	msg := encode(replies{
		{id: a, msg: &Rejected{Err: sale.ErrSoldOut}},
		{id: b, msg: &Rejected{Err: sale.ErrSoldOut}},
		{id: a, msg: &Rejected{Err: sale.ErrOverloaded}}, // a duplicate: dropped
	})
	r.SendUserMessage(r.pid, &actor.MessageEnvelope{Message: msg})
	r.SendUserMessage(r.pid, &actor.DeadLetterResponse{})                    // uncorrelated: ignored
	r.SendUserMessage(r.pid, &wrapperspb.BytesValue{Value: []byte{0xff, 1}}) // malformed: ignored
	select {
	case m := <-cha:
		if rej, ok := m.(*Rejected); !ok || rej.Err != sale.ErrSoldOut {
			t.Fatalf("call a got %#v; want the first answer, sold out", m)
		}
	default:
		t.Fatal("call a got no answer")
	}
	select {
	case m := <-cha:
		t.Fatalf("call a got a second answer %#v", m)
	case m := <-chb:
		t.Fatalf("forgotten call b got %#v", m)
	default:
	}
	if n := r.pending(); n != 0 {
		t.Fatalf("%d calls pending; want 0", n)
	}
}
