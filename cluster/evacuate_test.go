package cluster

import "testing"

// TestReconcileSickLeader: a node whose disk is full or slow hands every
// shard it leads to a healthy voter, the least loaded first, and says so
// in gossip; no node hands a leadership to a sick one.
func TestReconcileSickLeader(t *testing.T) {
	sick := func(id, why string) func(w *world) {
		return func(w *world) {
			mb := w.members[id]
			mb.Sick = why
			w.members[id] = mb
		}
	}
	tests := []struct {
		name  string
		sick  string // this node's
		setup func(w *world)
		steps []step
	}{{
		name: "a sick leader hands every ready shard away at once, spreading them",
		sick: "disk_slow",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2}, "n2", "n3")
			w.leaders[3] = "n2"
		},
		// n3 leads none, n2 one: n3, then n2 and n3 at one each.
		steps: []step{{want: []string{"0 transfer n3 raft-n3", "1 transfer n2 raft-n2", "2 transfer n3 raft-n3"}}},
	}, {
		name: "never to a sick, unreachable or deaf voter",
		sick: "disk_full",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4")
			w.lead([]int{0}, "n2", "n3", "n4")
			sick("n2", "disk_slow")(w)
			w.groups[0].unreachable["n3"] = true
		},
		steps: []step{{want: []string{"0 transfer n4 raft-n4"}}},
	}, {
		name: "no healthy voter: the shard stays",
		sick: "disk_slow",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0, 1}, "n2")
			sick("n2", "disk_slow")(w)
		},
		steps: []step{{}},
	}, {
		name: "a healthy node balancing skips a sick voter",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2", "n3")
			sick("n3", "disk_slow")(w)
		},
		// Share is 2 of 6 among three; n3 would be the least loaded.
		steps: []step{{want: []string{"0 transfer n2 raft-n2"}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(6)
			tc.setup(w)
			cfg := DefaultReconcilerConfig()
			cfg.Replicas = 5 // no membership changes in the way
			cfg.Sick = func() string { return tc.sick }
			runSteps(t, w, w.reconciler(t, cfg), tc.steps)
			if w.self.Sick != tc.sick {
				t.Errorf("gossiped Sick = %q; want %q", w.self.Sick, tc.sick)
			}
		})
	}
}
