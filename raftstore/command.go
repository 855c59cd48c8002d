package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
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
)

// Limits enforced by the decoder, so that a corrupt or hostile entry cannot
// make a replica allocate without bound.
const (
	idLenMax          = 64
	nameLenMax        = 256
	purchasesPerEntry = 4096
)

var errMalformed = errors.New("raftstore: malformed command")

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

// Encode appends the wire form of c to dst.
func (c *CreateItem) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdCreateItem))
	dst = binary.AppendVarint(dst, c.Stamp)
	dst = appendString(dst, c.ID)
	dst = appendString(dst, c.Name)
	dst = binary.AppendVarint(dst, c.Stock)
	dst = binary.AppendVarint(dst, int64(c.PerUserLimit))
	dst = binary.AppendVarint(dst, c.StartsAt)
	return binary.AppendVarint(dst, c.EndsAt)
}

// Encode appends the wire form of b to dst.
func (b *PurchaseBatch) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdPurchase))
	dst = binary.AppendVarint(dst, b.Stamp)
	dst = appendString(dst, b.ItemID)
	dst = binary.AppendUvarint(dst, uint64(len(b.Purchases)))
	for i := range b.Purchases {
		p := &b.Purchases[i]
		dst = appendString(dst, p.UserID)
		dst = appendString(dst, p.RequestID)
		dst = binary.AppendVarint(dst, int64(p.Quantity))
	}
	return binary.AppendVarint(dst, b.PayWindow)
}

// Encode appends the wire form of p to dst.
func (p *Pay) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdPay))
	dst = binary.AppendVarint(dst, p.Stamp)
	dst = binary.AppendUvarint(dst, p.OrderID)
	return appendString(dst, p.UserID)
}

// Encode appends the wire form of e to dst.
func (e *Expire) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdExpire))
	return binary.AppendVarint(dst, e.Stamp)
}

// Encode appends the wire form of m to dst.
func (m *MarkFlushed) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdMarkFlushed))
	dst = binary.AppendVarint(dst, m.Stamp)
	return binary.AppendUvarint(dst, m.UpTo)
}

// Encode appends the wire form of r to dst.
func (r *Restock) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdRestock))
	dst = binary.AppendVarint(dst, r.Stamp)
	dst = appendString(dst, r.ItemID)
	return binary.AppendVarint(dst, r.Delta)
}

// Encode appends the wire form of s to dst.
func (s *SetPaused) Encode(dst []byte) []byte {
	dst = append(dst, byte(CmdSetPaused))
	dst = binary.AppendVarint(dst, s.Stamp)
	dst = appendString(dst, s.ItemID)
	if s.Paused {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// Decode parses one command. It returns a pointer to one of the command
// structs above, or an error for malformed input; it never panics.
func Decode(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errMalformed
	}
	d := decoder{buf: data[1:]}
	var cmd any
	switch CommandType(data[0]) {
	case CmdCreateItem:
		c := &CreateItem{}
		c.Stamp = d.varint()
		c.ID = d.string(idLenMax)
		c.Name = d.string(nameLenMax)
		c.Stock = d.varint()
		c.PerUserLimit = d.int32()
		c.StartsAt = d.varint()
		c.EndsAt = d.varint()
		cmd = c
	case CmdPurchase:
		b := &PurchaseBatch{}
		b.Stamp = d.varint()
		b.ItemID = d.string(idLenMax)
		n := d.uvarint()
		if n > purchasesPerEntry || n > uint64(len(d.buf)) {
			return nil, fmt.Errorf("%w: %d purchases", errMalformed, n)
		}
		b.Purchases = make([]Purchase, n)
		for i := range b.Purchases {
			p := &b.Purchases[i]
			p.UserID = d.string(idLenMax)
			p.RequestID = d.string(idLenMax)
			p.Quantity = d.int32()
		}
		b.PayWindow = d.varint()
		cmd = b
	case CmdMarkFlushed:
		m := &MarkFlushed{}
		m.Stamp = d.varint()
		m.UpTo = d.uvarint()
		cmd = m
	case CmdRestock:
		r := &Restock{}
		r.Stamp = d.varint()
		r.ItemID = d.string(idLenMax)
		r.Delta = d.varint()
		cmd = r
	case CmdSetPaused:
		s := &SetPaused{}
		s.Stamp = d.varint()
		s.ItemID = d.string(idLenMax)
		s.Paused = d.bool()
		cmd = s
	case CmdPay:
		p := &Pay{}
		p.Stamp = d.varint()
		p.OrderID = d.uvarint()
		p.UserID = d.string(idLenMax)
		cmd = p
	case CmdExpire:
		e := &Expire{}
		e.Stamp = d.varint()
		cmd = e
	default:
		return nil, fmt.Errorf("%w: unknown type %d", errMalformed, data[0])
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.buf) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(d.buf))
	}
	return cmd, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decoder reads fields in order and remembers the first error, so that the
// caller checks once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errMalformed
	}
	d.buf = nil
}

// varint and uvarint accept only the shortest encoding, the one Encode
// writes, so that every accepted entry has exactly one byte form.
func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 || n != varintLen(v) {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 || n != uvarintLen(v) {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// bool reads a flag byte, 0 or 1.
func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < -1<<31 || v > 1<<31-1 {
		d.fail()
		return 0
	}
	return int32(v)
}

func (d *decoder) byte() byte {
	if len(d.buf) == 0 {
		d.fail()
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if n > uint64(max) || n > uint64(len(d.buf)) {
		d.fail()
		return ""
	}
	s := string(d.buf[:n])
	d.buf = d.buf[n:]
	return s
}
