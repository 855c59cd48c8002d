package raftstore

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestLayeredMatchesMap runs random writes, views, releases and compactions
// against a layered map and a plain map, and checks after every step that
// they hold the same keys, and that every view still shows the map as it
// was when it was taken, whatever happened after.
func TestLayeredMatchesMap(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, seed))
		l := newLayered[int, int]()
		ref := map[int]int{}
		type held struct {
			v    layeredView[int, int]
			want map[int]int
		}
		var views []held
		for step := 0; step < 3000; step++ {
			k := r.IntN(200)
			switch op := r.IntN(100); {
			case op < 50:
				l.set(k, step)
				ref[k] = step
			case op < 75:
				l.delete(k)
				delete(ref, k)
			case op < 80:
				want := make(map[int]int, len(ref))
				for k, v := range ref {
					want[k] = v
				}
				views = append(views, held{l.view(), want})
			case op < 88 && len(views) > 0:
				i := r.IntN(len(views))
				checkView(t, seed, step, views[i].v, views[i].want)
				l.release()
				views = append(views[:i], views[i+1:]...)
			default:
				l.compact(r.IntN(50))
			}
			if l.len() != len(ref) {
				t.Fatalf("seed %d step %d: len() = %d; want %d", seed, step, l.len(), len(ref))
			}
			for k := 0; k < 200; k++ {
				got, ok := l.get(k)
				want, wantOK := ref[k]
				if ok != wantOK || got != want {
					t.Fatalf("seed %d step %d: get(%d) = %d, %v; want %d, %v", seed, step, k, got, ok, want, wantOK)
				}
			}
		}
		for _, h := range views {
			checkView(t, seed, -1, h.v, h.want)
			l.release()
		}
		for l.compact(1000) > 0 {
		}
		if len(l.sealed) != 0 {
			t.Fatalf("seed %d: %d sealed layers after every view was released and compacted; want 0", seed, len(l.sealed))
		}
	}
}

func checkView(t *testing.T, seed uint64, step int, v layeredView[int, int], want map[int]int) {
	t.Helper()
	got := map[int]int{}
	v.each(func(k, val int) bool {
		if _, dup := got[k]; dup {
			t.Fatalf("seed %d step %d: view yields key %d twice", seed, step, k)
		}
		got[k] = val
		return true
	})
	if len(got) != len(want) || v.len() != len(want) {
		t.Fatalf("seed %d step %d: view has %d keys (len %d); want %d", seed, step, len(got), v.len(), len(want))
	}
	for k, val := range want {
		if got[k] != val {
			t.Fatalf("seed %d step %d: view[%d] = %d; want %d", seed, step, k, got[k], val)
		}
	}
}

// TestLayeredCompactWaitsForViews: nothing below the top layer changes
// while a view is held.
func TestLayeredCompactWaitsForViews(t *testing.T) {
	l := newLayered[string, int]()
	l.set("a", 1)
	v := l.view()
	l.set("a", 2)
	l.view()
	if n := l.compact(100); n != 0 {
		t.Fatalf("compact with views held moved %d entries; want 0", n)
	}
	var seen int
	v.each(func(_ string, val int) bool { seen = val; return true })
	if seen != 1 {
		t.Errorf("the first view shows a = %d; want 1", seen)
	}
	l.release()
	l.release()
	if n := l.compact(100); n != 2 {
		t.Fatalf("compact after release moved %d entries; want 2", n)
	}
	if got, _ := l.get("a"); got != 2 {
		t.Errorf("get(a) = %d; want 2", got)
	}
}

// TestLayeredViewWithoutLock reads a view on another goroutine, without the
// lock, while writes and compactions go on under it: run with -race.
func TestLayeredViewWithoutLock(t *testing.T) {
	var mu sync.Mutex
	l := newLayered[int, int]()
	for k := range 1000 {
		l.set(k, k)
	}
	for round := range 20 {
		mu.Lock()
		v := l.view()
		mu.Unlock()
		done := make(chan int)
		go func() {
			n := 0
			v.each(func(k, val int) bool { n++; return true })
			done <- n
		}()
		for i := range 2000 {
			mu.Lock()
			if i%3 == 0 {
				l.delete(i % 1500)
			} else {
				l.set(i%1500, round)
			}
			l.compact(10)
			mu.Unlock()
		}
		if n := <-done; n != v.len() {
			t.Fatalf("round %d: the view yielded %d keys; want %d", round, n, v.len())
		}
		mu.Lock()
		l.release()
		mu.Unlock()
	}
}
