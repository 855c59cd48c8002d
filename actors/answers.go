package actors

import "github.com/asynkron/protoactor-go/actor"

// answers collects an item actor's answers and sends them: each at once to
// a caller on this node, and as one replies message per calling node's
// router otherwise.
type answers struct {
	e      *Engine
	groups []answerGroup
}

// answerGroup is the answers collected for one calling node's router.
type answerGroup struct {
	to *actor.PID
	rs replies
}

// add answers the waiting purchase w with m: at once when its caller is on
// this node or waits on a future (a node of an older version), else in the
// group of its caller's router, which goes out whenever it holds repliesMax
// answers and at send.
func (a *answers) add(w waiting, m message) {
	switch {
	case w.local != nil:
		w.local.answer(m)
		return
	case w.callID == 0:
		a.e.reply(w.sender, m)
		return
	}
	for i := range a.groups {
		g := &a.groups[i]
		if g.to.Address == w.sender.Address && g.to.Id == w.sender.Id {
			g.rs = append(g.rs, routedReply{id: w.callID, msg: m})
			if len(g.rs) == repliesMax {
				a.e.sys.Root.Send(g.to, encode(g.rs))
				g.rs = g.rs[:0:0]
			}
			return
		}
	}
	a.groups = append(a.groups, answerGroup{to: w.sender, rs: replies{{id: w.callID, msg: m}}})
}

// send sends what add collected.
func (a *answers) send() {
	for _, g := range a.groups {
		if len(g.rs) > 0 {
			a.e.sys.Root.Send(g.to, encode(g.rs))
		}
	}
	a.groups = a.groups[:0]
}
