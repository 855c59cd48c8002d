package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flashstock/flashstock/internal/wire"
	"github.com/flashstock/flashstock/sale"
)

// CommandType identifies a Raft log command. The numbers are part of the
// on-disk format: append new types, never renumber or reuse one.
type CommandType uint8

// Command types.
const (
	CmdCreateItem  CommandType = 1
	CmdPurchase    CommandType = 2
	CmdMarkFlushed CommandType = 3
	CmdRestock     CommandType = 4
	CmdSetPaused   CommandType = 5
	CmdPay         CommandType = 6
	CmdExpire      CommandType = 7
	// CmdPurchaseEntry carries the purchases of several items of one shard
	// (the shard's group commit). A node of an earlier version cannot
	// apply it: it is written only once every voter can (Config.Allowed,
	// FeaturePurchaseEntry).
	CmdPurchaseEntry CommandType = 8
	// CmdCancel and CmdEndSale are admin commands; like CmdPurchaseEntry
	// they are written only once every server of the shard applies them
	// (FeatureAdminCommands).
	CmdCancel  CommandType = 9
	CmdEndSale CommandType = 10
	// CmdOutboxAppend switches the shard's outbox to appending every
	// change of an order as an entry of its own (FSM.outboxLocked); a
	// leader writes it once every server applies it (FeatureOutboxAppend).
	CmdOutboxAppend CommandType = 11
)

// The decoder enforces sale's bounds on IDs, names and purchases per entry,
// so that a corrupt or hostile entry cannot make a replica allocate
// without bound.

var errMalformed = errors.New("raftstore: malformed command")

// ErrOutOfBounds is what an encoder answers for a command the decoder
// would refuse: a string or a batch past its bound. Such a command never
// reaches the log, where every replica would panic on it at every restart.
var ErrOutOfBounds = errors.New("raftstore: command outside the log's bounds")

// checkLen refuses a string longer than the decoder's bound for it.
func checkLen(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrOutOfBounds, field, len(s), max)
	}
	return nil
}

// CreateItem creates a sale item.
type CreateItem struct {
	Stamp        int64 // leader time, unix nanoseconds
	ID           string
	Name         string
	Stock        int64
	PerUserLimit int32
	StartsAt     int64 // unix nanoseconds; 0 = no start bound
	EndsAt       int64 // unix nanoseconds; 0 = no end bound
}

// Purchase is one shopper's purchase inside a PurchaseBatch.
type Purchase struct {
	UserID    string
	RequestID string // optional idempotency key, scoped to the user
	Quantity  int32
}

// PurchaseBatch carries many purchases of one item in one log entry: the
// group commit that makes a hot item fast.
type PurchaseBatch struct {
	Stamp     int64
	ItemID    string
	Purchases []Purchase
	// PayWindow is how long the buyers have to pay, in nanoseconds; 0
	// means the orders are final when confirmed.
	PayWindow int64
}

// PurchaseEntry carries the purchases of several items of one shard in one
// log entry: what the shard's batcher gathered from every item actor while
// the previous entry was in flight. Order positions run across the groups,
// so they stay below sale.PurchasesPerEntryMax in all.
type PurchaseEntry struct {
	Stamp     int64
	PayWindow int64 // as in PurchaseBatch
	Groups    []PurchaseGroup
}

// PurchaseGroup is one item's purchases inside a PurchaseEntry.
type PurchaseGroup struct {
	ItemID    string
	Purchases []Purchase
}

// Pay marks an order paid, if its payment window is still open.
type Pay struct {
	Stamp   int64
	OrderID uint64
	UserID  string
}

// Expire expires every unpaid order whose payment window closed at or
// before Stamp, returning its stock to the sale.
type Expire struct {
	Stamp int64
}

// Cancel cancels an order an admin names: its units go back to the sale and
// to the buyer's allowance, as an expiry's do. Only an order the shard
// still holds can be cancelled (see FSM.cancelLocked).
type Cancel struct {
	Stamp   int64
	OrderID uint64
}

// EndSale closes an item's sale window at the command's time: purchases
// after it are refused as not on sale. A window that already ended earlier
// stays as it is.
type EndSale struct {
	Stamp  int64
	ItemID string
}

// OutboxAppend switches the outbox to one entry per change (see
// FSM.outboxLocked). It is written once per shard.
type OutboxAppend struct {
	Stamp int64
}

// MarkFlushed records that every order with an ID up to and including UpTo
// is durable in the order store.
type MarkFlushed struct {
	Stamp int64
	UpTo  uint64
}

// Restock adds Delta (which may be negative, down to zero remaining) to an
// item's stock.
type Restock struct {
	Stamp  int64
	ItemID string
	Delta  int64
}

// SetPaused pauses or resumes the sale of an item.
type SetPaused struct {
	Stamp  int64
	ItemID string
	Paused bool
}

// Encode appends the wire form of c to dst. It refuses a command
// the decoder would refuse.
func (c *CreateItem) Encode(dst []byte) ([]byte, error) {
	if err := errors.Join(checkLen("item id", c.ID, sale.IDLenMax), checkLen("name", c.Name, sale.NameLenMax)); err != nil {
		return dst, err
	}
	dst = append(dst, byte(CmdCreateItem))
	dst = binary.AppendVarint(dst, c.Stamp)
	dst = wire.AppendString(dst, c.ID)
	dst = wire.AppendString(dst, c.Name)
	dst = binary.AppendVarint(dst, c.Stock)
	dst = binary.AppendVarint(dst, int64(c.PerUserLimit))
	dst = binary.AppendVarint(dst, c.StartsAt)
	return binary.AppendVarint(dst, c.EndsAt), nil
}

// Encode appends the wire form of b to dst. It refuses a command
// the decoder would refuse.
func (b *PurchaseBatch) Encode(dst []byte) ([]byte, error) {
	if len(b.Purchases) > sale.PurchasesPerEntryMax {
		return dst, fmt.Errorf("%w: %d purchases in one entry, at most %d", ErrOutOfBounds, len(b.Purchases), sale.PurchasesPerEntryMax)
	}
	if err := checkLen("item id", b.ItemID, sale.IDLenMax); err != nil {
		return dst, err
	}
	for i := range b.Purchases {
		p := &b.Purchases[i]
		if err := errors.Join(checkLen("user id", p.UserID, sale.IDLenMax), checkLen("request id", p.RequestID, sale.IDLenMax)); err != nil {
			return dst, err
		}
	}
	dst = append(dst, byte(CmdPurchase))
	dst = binary.AppendVarint(dst, b.Stamp)
	dst = wire.AppendString(dst, b.ItemID)
	dst = binary.AppendUvarint(dst, uint64(len(b.Purchases)))
	for i := range b.Purchases {
		p := &b.Purchases[i]
		dst = wire.AppendString(dst, p.UserID)
		dst = wire.AppendString(dst, p.RequestID)
		dst = binary.AppendVarint(dst, int64(p.Quantity))
	}
	return binary.AppendVarint(dst, b.PayWindow), nil
}

// Encode appends the wire form of e to dst. It refuses a command the
// decoder would refuse: no groups, an empty group, more than
// sale.PurchasesPerEntryMax purchases in all, IDs past their bounds.
func (e *PurchaseEntry) Encode(dst []byte) ([]byte, error) {
	total := 0
	for _, g := range e.Groups {
		total += len(g.Purchases)
		if len(g.Purchases) == 0 {
			return dst, fmt.Errorf("%w: an empty group", ErrOutOfBounds)
		}
		if err := checkLen("item id", g.ItemID, sale.IDLenMax); err != nil {
			return dst, err
		}
		for i := range g.Purchases {
			p := &g.Purchases[i]
			if err := errors.Join(checkLen("user id", p.UserID, sale.IDLenMax), checkLen("request id", p.RequestID, sale.IDLenMax)); err != nil {
				return dst, err
			}
		}
	}
	if len(e.Groups) == 0 || total > sale.PurchasesPerEntryMax {
		return dst, fmt.Errorf("%w: %d groups, %d purchases in one entry, at most %d", ErrOutOfBounds, len(e.Groups), total, sale.PurchasesPerEntryMax)
	}
	dst = append(dst, byte(CmdPurchaseEntry))
	dst = binary.AppendVarint(dst, e.Stamp)
	dst = binary.AppendVarint(dst, e.PayWindow)
	dst = binary.AppendUvarint(dst, uint64(len(e.Groups)))
	for _, g := range e.Groups {
		dst = wire.AppendString(dst, g.ItemID)
		dst = binary.AppendUvarint(dst, uint64(len(g.Purchases)))
		for i := range g.Purchases {
			p := &g.Purchases[i]
			dst = wire.AppendString(dst, p.UserID)
			dst = wire.AppendString(dst, p.RequestID)
			dst = binary.AppendVarint(dst, int64(p.Quantity))
		}
	}
	return dst, nil
}

// Encode appends the wire form of p to dst. It refuses a command
// the decoder would refuse.
func (p *Pay) Encode(dst []byte) ([]byte, error) {
	if err := checkLen("user id", p.UserID, sale.IDLenMax); err != nil {
		return dst, err
	}
	dst = append(dst, byte(CmdPay))
	dst = binary.AppendVarint(dst, p.Stamp)
	dst = binary.AppendUvarint(dst, p.OrderID)
	return wire.AppendString(dst, p.UserID), nil
}

// Encode appends the wire form of e to dst. It refuses a command
// the decoder would refuse.
func (e *Expire) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, byte(CmdExpire))
	return binary.AppendVarint(dst, e.Stamp), nil
}

// Encode appends the wire form of m to dst. It refuses a command
// the decoder would refuse.
func (m *MarkFlushed) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, byte(CmdMarkFlushed))
	dst = binary.AppendVarint(dst, m.Stamp)
	return binary.AppendUvarint(dst, m.UpTo), nil
}

// Encode appends the wire form of r to dst. It refuses a command
// the decoder would refuse.
func (r *Restock) Encode(dst []byte) ([]byte, error) {
	if err := checkLen("item id", r.ItemID, sale.IDLenMax); err != nil {
		return dst, err
	}
	dst = append(dst, byte(CmdRestock))
	dst = binary.AppendVarint(dst, r.Stamp)
	dst = wire.AppendString(dst, r.ItemID)
	return binary.AppendVarint(dst, r.Delta), nil
}

// Encode appends the wire form of c to dst.
func (c *Cancel) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, byte(CmdCancel))
	dst = binary.AppendVarint(dst, c.Stamp)
	return binary.AppendUvarint(dst, c.OrderID), nil
}

// Encode appends the wire form of e to dst. It refuses a command
// the decoder would refuse.
func (e *EndSale) Encode(dst []byte) ([]byte, error) {
	if err := checkLen("item id", e.ItemID, sale.IDLenMax); err != nil {
		return dst, err
	}
	dst = append(dst, byte(CmdEndSale))
	dst = binary.AppendVarint(dst, e.Stamp)
	return wire.AppendString(dst, e.ItemID), nil
}

// Encode appends the wire form of o to dst.
func (o *OutboxAppend) Encode(dst []byte) ([]byte, error) {
	dst = append(dst, byte(CmdOutboxAppend))
	return binary.AppendVarint(dst, o.Stamp), nil
}

// Encode appends the wire form of s to dst. It refuses a command
// the decoder would refuse.
func (s *SetPaused) Encode(dst []byte) ([]byte, error) {
	if err := checkLen("item id", s.ItemID, sale.IDLenMax); err != nil {
		return dst, err
	}
	dst = append(dst, byte(CmdSetPaused))
	dst = binary.AppendVarint(dst, s.Stamp)
	dst = wire.AppendString(dst, s.ItemID)
	return wire.AppendBool(dst, s.Paused), nil
}

// Decode parses one command. It returns a pointer to one of the command
// structs above, or an error for malformed input; it never panics.
func Decode(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errMalformed
	}
	d := wire.Reader{B: data[1:]}
	var cmd any
	switch CommandType(data[0]) {
	case CmdCreateItem:
		c := &CreateItem{}
		c.Stamp = d.Varint()
		c.ID = d.String(sale.IDLenMax)
		c.Name = d.String(sale.NameLenMax)
		c.Stock = d.Varint()
		c.PerUserLimit = d.Int32()
		c.StartsAt = d.Varint()
		c.EndsAt = d.Varint()
		cmd = c
	case CmdPurchase:
		b := &PurchaseBatch{}
		b.Stamp = d.Varint()
		b.ItemID = d.String(sale.IDLenMax)
		n := d.Uvarint()
		if n > sale.PurchasesPerEntryMax || n > uint64(len(d.B)) {
			return nil, fmt.Errorf("%w: %d purchases", errMalformed, n)
		}
		b.Purchases = make([]Purchase, n)
		for i := range b.Purchases {
			p := &b.Purchases[i]
			p.UserID = d.String(sale.IDLenMax)
			p.RequestID = d.String(sale.IDLenMax)
			p.Quantity = d.Int32()
		}
		b.PayWindow = d.Varint()
		cmd = b
	case CmdPurchaseEntry:
		e := &PurchaseEntry{}
		e.Stamp = d.Varint()
		e.PayWindow = d.Varint()
		groups := d.Uvarint()
		if groups == 0 || groups > sale.PurchasesPerEntryMax || groups > uint64(len(d.B)) {
			return nil, fmt.Errorf("%w: %d groups", errMalformed, groups)
		}
		e.Groups = make([]PurchaseGroup, groups)
		total := uint64(0)
		for gi := range e.Groups {
			g := &e.Groups[gi]
			g.ItemID = d.String(sale.IDLenMax)
			n := d.Uvarint()
			total += n
			if n == 0 || total > sale.PurchasesPerEntryMax || n > uint64(len(d.B)) {
				return nil, fmt.Errorf("%w: %d purchases", errMalformed, total)
			}
			g.Purchases = make([]Purchase, n)
			for i := range g.Purchases {
				p := &g.Purchases[i]
				p.UserID = d.String(sale.IDLenMax)
				p.RequestID = d.String(sale.IDLenMax)
				p.Quantity = d.Int32()
			}
		}
		cmd = e
	case CmdMarkFlushed:
		m := &MarkFlushed{}
		m.Stamp = d.Varint()
		m.UpTo = d.Uvarint()
		cmd = m
	case CmdRestock:
		r := &Restock{}
		r.Stamp = d.Varint()
		r.ItemID = d.String(sale.IDLenMax)
		r.Delta = d.Varint()
		cmd = r
	case CmdSetPaused:
		s := &SetPaused{}
		s.Stamp = d.Varint()
		s.ItemID = d.String(sale.IDLenMax)
		s.Paused = d.Bool()
		cmd = s
	case CmdPay:
		p := &Pay{}
		p.Stamp = d.Varint()
		p.OrderID = d.Uvarint()
		p.UserID = d.String(sale.IDLenMax)
		cmd = p
	case CmdExpire:
		e := &Expire{}
		e.Stamp = d.Varint()
		cmd = e
	case CmdCancel:
		c := &Cancel{}
		c.Stamp = d.Varint()
		c.OrderID = d.Uvarint()
		cmd = c
	case CmdEndSale:
		e := &EndSale{}
		e.Stamp = d.Varint()
		e.ItemID = d.String(sale.IDLenMax)
		cmd = e
	case CmdOutboxAppend:
		cmd = &OutboxAppend{Stamp: d.Varint()}
	default:
		return nil, fmt.Errorf("%w: unknown type %d", errMalformed, data[0])
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return cmd, nil
}
