package raftstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
	"github.com/flashstock/flashstock/sale"
)

// commitOnLeader runs op on the shard's current leader, and again on a
// replication error (the leader moved, or the outcome is unknown), as a
// client of idempotent commands does. It fails the test on any other
// error, or when the replication errors do not stop.
func commitOnLeader(t *testing.T, c *raftstoretest.Cluster, what string, op func(sh *raftstore.Shard, retry bool) error) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = op(c.Leader(0).Shard(0), attempt > 0); !replicationErr(err) {
			break
		}
	}
	if err != nil {
		t.Fatalf("%s = %v; want nil", what, err)
	}
}

// buyAll buys one unit for each user, request ID "req-<user>", and wants
// each purchase confirmed (or, on a retry, answered with its order).
func buyAll(t *testing.T, c *raftstoretest.Cluster, users ...string) {
	t.Helper()
	var ps []raftstore.Purchase
	for _, u := range users {
		ps = append(ps, p(u, "req-"+u, 1))
	}
	commitOnLeader(t, c, fmt.Sprintf("PurchaseBatch(%v)", users), func(sh *raftstore.Shard, _ bool) error {
		res, err := sh.PurchaseBatch("phone", ps)
		if err != nil {
			return err
		}
		for i, r := range res {
			if r.Outcome != sale.OutcomeConfirmed && r.Outcome != sale.OutcomeDuplicate {
				return fmt.Errorf("purchase by %s: outcome %v", users[i], r.Outcome.Err())
			}
		}
		return nil
	})
}

// checkStock fails the test unless every given store's replica holds the
// phone's remaining stock want, within a few commit rounds (a follower
// learns an entry is committed with the next AppendEntries), and knows no
// purchase by user.
func checkStock(t *testing.T, stores []*raftstore.Store, want int64, user string) {
	t.Helper()
	testutil.Eventually(10*time.Second, func() bool {
		for _, s := range stores {
			if got, _ := s.Shard(0).FSM().Remaining("phone"); got != want {
				return false
			}
		}
		return true
	})
	for _, s := range stores {
		f := s.Shard(0).FSM()
		if got, ok := f.Remaining("phone"); !ok || got != want {
			t.Errorf("store %s: Remaining(phone) = %d, %t; want %d, true", s.Addr(), got, ok, want)
		}
		if got := f.Bought("phone", user); got != 0 {
			t.Errorf("store %s: Bought(phone, %s) = %d; want 0", s.Addr(), user, got)
		}
		if o, ok := f.LookupRequest("phone", user, "req-"+user); ok {
			t.Errorf("store %s: LookupRequest(%s) = order %d; want none", s.Addr(), user, o.ID)
		}
	}
}

// TestClusterPartition replicates purchases across three nodes, cuts the
// leader off, and checks that the majority elects a new leader and goes on
// selling, that the old leader can commit nothing alone, and that after
// the heal every replica holds the same state, without the minority's
// purchase.
func TestClusterPartition(t *testing.T) {
	c := raftstoretest.NewCluster(t, 3, 1)
	commitOnLeader(t, c, "CreateItem(phone)", func(sh *raftstore.Shard, retry bool) error {
		_, err := sh.CreateItem(raftstore.CreateItem{ID: "phone", Name: "Phone", Stock: 100, PerUserLimit: 1})
		if retry && errors.Is(err, sale.ErrItemExists) {
			return nil // an earlier attempt with an unknown outcome committed
		}
		return err
	})
	buyAll(t, c, "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9")
	c.EnsureSame(t, 0)
	checkStock(t, c.Stores, 90, "cut-off")

	old := c.Leader(0)
	c.Partition(old)
	var majority []*raftstore.Store
	for _, s := range c.Stores {
		if s != old {
			majority = append(majority, s)
		}
	}

	// The old leader, alone, cannot commit: the purchase fails with a
	// replication error (not leader, or leadership lost while it waited).
	res, err := old.Shard(0).PurchaseBatch("phone", []raftstore.Purchase{p("cut-off", "req-cut-off", 1)})
	if !replicationErr(err) {
		t.Fatalf("PurchaseBatch on the cut-off leader = %+v, %v; want a replication error", res, err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool { return !old.Shard(0).IsLeader() })

	// The majority elects a leader of its own and goes on selling.
	if l := c.Leader(0); l == old {
		t.Fatalf("Leader(0) = the cut-off node; want one of the majority")
	}
	buyAll(t, c, "u10", "u11", "u12", "u13", "u14")
	checkStock(t, majority, 85, "cut-off")
	if got, _ := old.Shard(0).FSM().Remaining("phone"); got != 90 {
		t.Errorf("cut-off node: Remaining(phone) = %d; want 90 (it hears nothing while cut off)", got)
	}

	// After the heal the old leader catches up, and its uncommitted
	// purchase is gone everywhere.
	c.Heal()
	c.EnsureSame(t, 0)
	checkStock(t, c.Stores, 85, "cut-off")
	buyAll(t, c, "u15")
	c.EnsureSame(t, 0)
	checkStock(t, c.Stores, 84, "cut-off")
}
