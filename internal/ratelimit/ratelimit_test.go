package ratelimit

import (
	"fmt"
	"hash/maphash"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Unix(1_700_000_000, 0)} }
func allowN(l *Limiter, key string, n int) (ok int) {
	for i := 0; i < n; i++ {
		if a, _ := l.Allow(key); a {
			ok++
		}
	}
	return ok
}

func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := New(10, 5, 1024, c.now)
	if got := allowN(l, "alice", 8); got != 5 {
		t.Fatalf("Allow x8 at once = %d allowed; want the burst of 5", got)
	}
	ok, wait := l.Allow("alice")
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("Allow when empty = %v, %v; want false and a wait up to 100ms", ok, wait)
	}
	c.add(300 * time.Millisecond) // 3 tokens at 10/s
	if got := allowN(l, "alice", 5); got != 3 {
		t.Fatalf("after 300ms: %d allowed; want 3", got)
	}
	c.add(time.Hour) // refills only up to the burst
	if got := allowN(l, "alice", 10); got != 5 {
		t.Fatalf("after an hour: %d allowed; want the burst of 5", got)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	c := newClock()
	l := New(1, 2, 1<<16, c.now)
	used := map[uint64]bool{}
	for i := 0; i < 100; i++ {
		key := fmt.Sprintf("user-%d", i)
		idx := maphash.String(l.seed, key) & uint64(len(l.buckets)-1)
		if used[idx] {
			continue // shares a bucket (by design, rare): not independent
		}
		used[idx] = true
		if got := allowN(l, key, 3); got != 2 {
			t.Fatalf("%s: %d allowed; want 2", key, got)
		}
	}
	if len(used) < 90 {
		t.Fatalf("only %d of 100 keys in buckets of their own", len(used))
	}
}

// TestAllowPair: a pair is its own key, distinct from each part and from
// the pair the other way round.
func TestAllowPair(t *testing.T) {
	c := newClock()
	l := New(1, 2, 1<<16, c.now)
	if got := allowPairN(l, "alice", "phone", 5); got != 2 {
		t.Fatalf("alice/phone: %d allowed; want the burst of 2", got)
	}
	if got := allowPairN(l, "alice", "tv", 5); got != 2 {
		t.Errorf("alice/tv after alice/phone: %d allowed; want 2 (another item)", got)
	}
	if got := allowPairN(l, "phone", "alice", 5); got != 2 {
		t.Errorf("phone/alice: %d allowed; want 2 (the pair is ordered)", got)
	}
	c.add(time.Second)
	if got := allowPairN(l, "alice", "phone", 5); got != 1 {
		t.Errorf("alice/phone a second later: %d allowed; want 1", got)
	}
}

func allowPairN(l *Limiter, a, b string, n int) int {
	ok := 0
	for range n {
		if allowed, _ := l.AllowPair(a, b); allowed {
			ok++
		}
	}
	return ok
}

func TestBoundedMemory(t *testing.T) {
	l := New(1, 1, 1000, nil)
	if len(l.buckets) != 1024 {
		t.Fatalf("buckets = %d; want 1024", len(l.buckets))
	}
	for i := 0; i < 100000; i++ {
		l.Allow(fmt.Sprint(i))
	}
	if len(l.buckets) != 1024 {
		t.Fatalf("buckets grew to %d", len(l.buckets))
	}
}

func TestConcurrentNeverExceedsBudget(t *testing.T) {
	c := newClock()
	l := New(1, 100, 64, c.now)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := allowN(l, "hot", 50)
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total != 100 {
		t.Fatalf("allowed %d across goroutines; want exactly the burst of 100", total)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1e9, 1e9, 1<<16, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.Allow(fmt.Sprint(i & 1023))
			i++
		}
	})
}

func TestExhaustedTakesNothing(t *testing.T) {
	now := time.Unix(100, 0)
	l := New(1, 2, 16, func() time.Time { return now })
	for i := 0; i < 10; i++ {
		if empty, _ := l.Exhausted("ip"); empty {
			t.Fatalf("Exhausted(ip) = true after %d looks and no failures; want false", i)
		}
	}
	l.Allow("ip")
	l.Allow("ip")
	empty, wait := l.Exhausted("ip")
	if !empty || wait != time.Second {
		t.Fatalf("Exhausted after the burst = %v, %v; want true, 1s", empty, wait)
	}
	now = now.Add(time.Second)
	if empty, _ := l.Exhausted("ip"); empty {
		t.Fatal("Exhausted a second later = true; want a token back")
	}
	if ok, _ := l.Allow("ip"); !ok {
		t.Fatal("Allow after the refill = false; Exhausted must not have taken the token")
	}
}
