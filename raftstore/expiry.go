package raftstore

// expiry is a FIFO of keys with expiry times (command time), in the order
// they were remembered: the index of a memory bounded by age and count, such
// as the remembered request IDs. Popping from the front is O(1) amortised,
// and the order survives snapshots, so every replica forgets the same keys
// at the same log entry.
type expiry[K comparable] struct {
	q    []expiryRef[K]
	head int
}

type expiryRef[K comparable] struct {
	key     K
	expires int64
}

func (e *expiry[K]) push(key K, expires int64) {
	e.q = append(e.q, expiryRef[K]{key: key, expires: expires})
}

// trim pops every reference that has expired at now, and more while full()
// says the memory is over its bound, calling forget for each. forget must
// drop the key only if it was not remembered again since (compare the
// expiry stored with it): a key may have several references.
func (e *expiry[K]) trim(now int64, full func() bool, forget func(K, int64)) {
	for e.head < len(e.q) {
		ref := e.q[e.head]
		if ref.expires > now && !full() {
			break
		}
		forget(ref.key, ref.expires)
		// Not zeroed: a snapshot may hold this part of q (live), and the
		// keys hold no pointers. Compaction below drops the front.
		e.head++
	}
	if e.head > 1024 && e.head > len(e.q)/2 {
		e.q = append([]expiryRef[K](nil), e.q[e.head:]...)
		e.head = 0
	}
}

// live returns the references not yet popped, oldest first. The slice is
// never written again (push appends past it; trim and compaction never
// write into it), so a snapshot may keep it and read it without the lock.
func (e *expiry[K]) live() []expiryRef[K] { return e.q[e.head:] }
