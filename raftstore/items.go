package raftstore

import (
	"sort"

	"github.com/flashstock/flashstock/sale"
)

// Items: creating, restocking, pausing and reading them. An item's stock
// lives here and nowhere else; the commands that change it are decided in
// Apply, so every replica holds the same Remaining after the same entry.

// createItemLocked adds an item with all its stock unsold; an ID already
// taken answers sale.ErrItemExists.
func (f *FSM) createItemLocked(c *CreateItem) any {
	if _, ok := f.mu.items[c.ID]; ok {
		return sale.ErrItemExists
	}
	it := &sale.Item{
		ID:           c.ID,
		Name:         c.Name,
		Stock:        c.Stock,
		Remaining:    c.Stock,
		PerUserLimit: c.PerUserLimit,
		StartsAt:     c.StartsAt,
		EndsAt:       c.EndsAt,
		CreatedAt:    c.Stamp,
	}
	f.mu.items[c.ID] = it
	return *it
}

// restockLocked adds c.Delta units to an item's stock (a negative delta
// removes unsold units); it never takes Remaining below zero.
func (f *FSM) restockLocked(c *Restock) any {
	it, ok := f.mu.items[c.ItemID]
	if !ok {
		return sale.ErrItemNotFound
	}
	if it.Remaining+c.Delta < 0 {
		return sale.ErrInvalidStock
	}
	it.Stock += c.Delta
	it.Remaining += c.Delta
	return *it
}

// endSaleLocked closes an item's sale window at now, the command's time.
// A window that ended earlier keeps its end; one that had not started yet
// ends before it opens.
func (f *FSM) endSaleLocked(c *EndSale, now int64) any {
	it, ok := f.mu.items[c.ItemID]
	if !ok {
		return sale.ErrItemNotFound
	}
	if it.EndsAt == 0 || it.EndsAt > now {
		it.EndsAt = max(now, it.StartsAt)
	}
	return *it
}

// setPausedLocked pauses or resumes an item's sale.
func (f *FSM) setPausedLocked(c *SetPaused) any {
	it, ok := f.mu.items[c.ItemID]
	if !ok {
		return sale.ErrItemNotFound
	}
	it.Paused = c.Paused
	return *it
}

// Item returns a copy of the item.
func (f *FSM) Item(id string) (sale.Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.mu.items[id]
	if !ok {
		return sale.Item{}, false
	}
	return *it, true
}

// Items returns copies of all items, sorted by ID.
func (f *FSM) Items() []sale.Item {
	f.mu.RLock()
	out := make([]sale.Item, 0, len(f.mu.items))
	for _, it := range f.mu.items {
		out = append(out, *it)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Remaining returns the committed remaining stock of an item, and false if
// the item does not exist.
func (f *FSM) Remaining(id string) (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.mu.items[id]
	if !ok {
		return 0, false
	}
	return it.Remaining, true
}
