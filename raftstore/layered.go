package raftstore

// layered is a map whose point-in-time view costs O(1), so that a snapshot
// of the state machine never stops Apply for long (hashicorp/raft calls
// FSM.Snapshot on the FSM goroutine and wants it quick; Persist, which
// writes the view out, runs concurrently with Apply).
//
// Writes go to the top layer. view seals the top layer: from then on it is
// never written again, and neither is anything below it while a view is
// held, so Persist reads them without the FSM's lock. Once every view is
// released, compact moves the oldest sealed layer into the base a few
// entries at a time, on the apply goroutine, so that reads look at two or
// three maps, not one per snapshot ever taken.
//
// Deleting a key that a lower layer holds writes a tombstone in the top
// layer. Every method but the view's own must be called under the FSM's
// lock (reads under its read lock).
type layered[K comparable, V any] struct {
	top    map[K]slot[V]
	sealed []map[K]slot[V] // newest first; not written while views > 0
	base   map[K]V         // not written while views > 0
	n      int             // live keys
	views  int             // views not yet released
}

type slot[V any] struct {
	v    V
	dead bool // a tombstone: the key is deleted
}

func newLayered[K comparable, V any]() *layered[K, V] {
	return &layered[K, V]{top: make(map[K]slot[V]), base: make(map[K]V)}
}

// get returns the value of k.
func (l *layered[K, V]) get(k K) (V, bool) {
	if s, ok := l.top[k]; ok {
		return s.v, !s.dead
	}
	for _, m := range l.sealed {
		if s, ok := m[k]; ok {
			return s.v, !s.dead
		}
	}
	v, ok := l.base[k]
	return v, ok
}

// below reports whether a layer under the top one holds k, live or not.
func (l *layered[K, V]) below(k K) bool {
	for _, m := range l.sealed {
		if _, ok := m[k]; ok {
			return true
		}
	}
	_, ok := l.base[k]
	return ok
}

// set sets k to v.
func (l *layered[K, V]) set(k K, v V) {
	if _, ok := l.get(k); !ok {
		l.n++
	}
	l.top[k] = slot[V]{v: v}
}

// delete deletes k.
func (l *layered[K, V]) delete(k K) {
	if _, ok := l.get(k); !ok {
		return
	}
	l.n--
	if l.below(k) {
		l.top[k] = slot[V]{dead: true}
		return
	}
	delete(l.top, k)
}

// load adds a key that is not in the map yet straight to the base, for
// building a map from a snapshot.
func (l *layered[K, V]) load(k K, v V) {
	if _, ok := l.base[k]; !ok {
		l.n++
	}
	l.base[k] = v
}

// len returns the number of live keys.
func (l *layered[K, V]) len() int { return l.n }

// each calls f for every live key, in no particular order, until f
// returns false. f must not write to the map.
func (l *layered[K, V]) each(f func(K, V) bool) {
	layeredView[K, V]{sealed: append([]map[K]slot[V]{l.top}, l.sealed...), base: l.base, n: l.n}.each(f)
}

// view seals the top layer and returns an immutable view of the map as it
// is now. It costs O(layers). The caller must release it.
func (l *layered[K, V]) view() layeredView[K, V] {
	if len(l.top) > 0 {
		l.sealed = append([]map[K]slot[V]{l.top}, l.sealed...)
		l.top = make(map[K]slot[V])
	}
	l.views++
	return layeredView[K, V]{sealed: append([]map[K]slot[V](nil), l.sealed...), base: l.base, n: l.n}
}

// release ends a view: once none is held, compact may write below the top
// layer again.
func (l *layered[K, V]) release() {
	if l.views > 0 {
		l.views--
	}
}

// compact moves up to budget entries of the oldest sealed layer into the
// base, while no view is held. It returns how many it moved.
func (l *layered[K, V]) compact(budget int) int {
	moved := 0
	for l.views == 0 && len(l.sealed) > 0 && moved < budget {
		old := l.sealed[len(l.sealed)-1]
		for k, s := range old {
			if moved == budget {
				break
			}
			if s.dead {
				delete(l.base, k)
			} else {
				l.base[k] = s.v
			}
			delete(old, k)
			moved++
		}
		if len(old) == 0 {
			l.sealed[len(l.sealed)-1] = nil
			l.sealed = l.sealed[:len(l.sealed)-1]
		}
	}
	return moved
}

// layeredView is a layered map as it was when the view was taken. Its maps
// are never written while the view is held, so it may be read without the
// FSM's lock.
type layeredView[K comparable, V any] struct {
	sealed []map[K]slot[V]
	base   map[K]V
	n      int
}

// len returns the number of live keys in the view.
func (v layeredView[K, V]) len() int { return v.n }

// each calls f for every live key of the view, in no particular order,
// until f returns false.
func (v layeredView[K, V]) each(f func(K, V) bool) {
	for i, m := range v.sealed {
		for k, s := range m {
			if s.dead || v.shadowed(k, i) {
				continue
			}
			if !f(k, s.v) {
				return
			}
		}
	}
	for k, val := range v.base {
		if v.shadowed(k, len(v.sealed)) {
			continue
		}
		if !f(k, val) {
			return
		}
	}
}

// get returns the value of k in the view.
func (v layeredView[K, V]) get(k K) (V, bool) {
	for _, m := range v.sealed {
		if s, ok := m[k]; ok {
			return s.v, !s.dead
		}
	}
	val, ok := v.base[k]
	return val, ok
}

// shadowed reports whether a layer newer than layer i holds k.
func (v layeredView[K, V]) shadowed(k K, i int) bool {
	for _, m := range v.sealed[:i] {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}
