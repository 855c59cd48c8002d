package breaker

import (
	"fmt"
	"testing"
	"time"
)

func TestBreakerCycle(t *testing.T) {
	now := time.Unix(0, 0)
	b := New(3, time.Second, func() time.Time { return now })
	for i := 0; i < 2; i++ {
		if !b.Allow() {
			t.Fatalf("Allow after %d failures = false; want true", i)
		}
		b.Failure()
	}
	if !b.Allow() {
		t.Fatal("Allow before the threshold = false")
	}
	b.Failure() // third: opens
	if b.Allow() || b.State() != Open {
		t.Fatalf("after 3 failures: Allow true or state %v; want open", b.State())
	}
	now = now.Add(time.Second)
	if b.State() != HalfOpen || !b.Allow() {
		t.Fatalf("after cooldown: state %v; want one half-open trial", b.State())
	}
	if b.Allow() {
		t.Fatal("a second call during the trial was allowed")
	}
	b.Failure() // trial failed: open again
	if b.Allow() {
		t.Fatal("Allow after a failed trial = true")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no trial after the second cooldown")
	}
	b.Success()
	if b.State() != Closed || !b.Allow() {
		t.Fatalf("after a successful trial: state %v; want closed", b.State())
	}
}

func TestSuccessResetsCount(t *testing.T) {
	b := New(2, time.Minute, nil)
	b.Failure()
	b.Success()
	b.Failure()
	if b.State() != Closed {
		t.Fatalf("state %v after non-consecutive failures; want closed", b.State())
	}
}

// TestBreakerCancelledTrialAndChanges: a trial that ends without an
// outcome (its caller ran out of time before sending) frees the trial
// slot, so the breaker recovers once the peer answers; every change of
// state is told, once.
func TestBreakerCancelledTrialAndChanges(t *testing.T) {
	now := time.Unix(0, 0)
	b := New(2, time.Second, func() time.Time { return now })
	var changes []string
	b.OnChange(func(from, to State) { changes = append(changes, from.String()+">"+to.String()) })
	b.Allow()
	b.Failure()
	b.Allow()
	b.Failure() // opens
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no trial after the cooldown")
	}
	b.Cancel() // the trial was never sent
	if !b.Allow() {
		t.Fatal("a cancelled trial kept the breaker from trying again")
	}
	b.Success() // the peer is back
	if b.State() != Closed {
		t.Fatalf("State() = %v after a successful trial; want closed", b.State())
	}
	want := []string{"closed>open", "open>half_open", "open>half_open", "half_open>closed"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes %v; want %v", changes, want)
	}
}
