package breaker

import (
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
