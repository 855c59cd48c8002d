package actors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/internal/wire"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// Messages between nodes travel as a protobuf BytesValue holding our own
// binary encoding. protoactor's remote needs protobuf messages whose types
// are linked into both binaries (an unknown type crashes the receiver in
// this protoactor version); BytesValue is a well-known type that every
// binary has, so no generated code is needed and the format stays ours.
//
// The first byte is the message kind; the rest is varints and
// length-prefixed strings, as in raftstore's command format.

type msgKind uint8

const (
	msgPurchase   msgKind = 1
	msgPurchased  msgKind = 2
	msgRejected   msgKind = 3
	msgGetItem    msgKind = 4
	msgItem       msgKind = 5
	msgCreateItem msgKind = 6
	msgRestock    msgKind = 7
	msgSetPaused  msgKind = 8
	msgPay        msgKind = 9
	// A purchase from another node's engine, answered through its router
	// (transport.go) rather than a future; and those answers, many per
	// message.
	msgPurchaseCall msgKind = 10
	msgReplies      msgKind = 11
	// Order reads a gateway sends to a shard leader's reads actor
	// (reads.go), and the list a user's orders come back in.
	msgGetOrder   msgKind = 12
	msgUserOrders msgKind = 13
	msgOrderList  msgKind = 14
	// Admin commands of this version: a node of an earlier version does
	// not know them and drops them (the caller times out, nothing is
	// applied); their Raft commands wait for every voter anyway
	// (raftstore.FeatureAdminCommands).
	msgEndSale msgKind = 15
	msgCancel  msgKind = 16
)

// Errors cross the wire as their number in sale's error table
// (sale.WireOf, sale.FromWire).

var errBadMessage = errors.New("actors: malformed message")

// message is a decoded envelope: one of the request or reply types.
type message interface{}

// getItem asks the owner for an item's committed state.
type getItem struct{}

// itemReply carries an item.
type itemReply struct{ item sale.Item }

// createItem, restock and setPaused are admin commands applied by the
// item's owner.
type createItem struct{ cmd raftstore.CreateItem }
type restock struct{ delta int64 }
type setPaused struct{ paused bool }
type endSale struct{}

// cancelOrder asks the owner of an order's item to cancel the order.
type cancelOrder struct{ orderID uint64 }

// pay asks the owner of an order's item to pay the order.
type pay struct {
	orderID uint64
	userID  string
}

// getOrder asks a shard's leader for an order in its latest state; the
// answer is a Purchased (Duplicate: the order is in the order store) or a
// Rejected.
type getOrder struct{ id uint64 }

// userOrders asks a node for a user's orders: those pending in its
// replicas and those in its order store, newest first, at most limit.
type userOrders struct {
	user  string
	limit int
}

// orderList carries orders.
type orderList []orders.Order

// orderListMax bounds the orders in one orderList message.
const orderListMax = 1000

// purchaseCall is a purchase from another node, answered with a replies
// message to the sender's router under the call's id.
type purchaseCall struct {
	id  uint64
	req sale.Request
}

// replies carries answers to purchase calls, for one router.
type replies []routedReply

type routedReply struct {
	id  uint64
	msg message // *Purchased or *Rejected
}

// repliesMax bounds the answers in one replies message.
const repliesMax = 256

func envelope(b []byte) *wrapperspb.BytesValue { return &wrapperspb.BytesValue{Value: b} }

func encode(m message) *wrapperspb.BytesValue {
	var b []byte
	switch m := m.(type) {
	case *Purchase:
		b = append(b, byte(msgPurchase))
		b = appendRequest(b, &m.Request)
	case *purchaseCall:
		b = append(b, byte(msgPurchaseCall))
		b = binary.AppendUvarint(b, m.id)
		b = appendRequest(b, &m.req)
	case replies:
		b = append(b, byte(msgReplies))
		b = binary.AppendUvarint(b, uint64(len(m)))
		for _, r := range m {
			b = binary.AppendUvarint(b, r.id)
			b = appendReply(b, r.msg)
		}
	case *Purchased, *Rejected:
		b = appendReply(b, m)
	case *getItem:
		b = append(b, byte(msgGetItem))
	case *itemReply:
		b = append(b, byte(msgItem))
		b = appendItem(b, &m.item)
	case *createItem:
		b = append(b, byte(msgCreateItem))
		var err error
		if b, err = m.cmd.Encode(b); err != nil {
			// Engine.CreateItem checks the bounds before anything is sent.
			panic(fmt.Sprintf("actors: encode create item: %v", err))
		}
	case *restock:
		b = append(b, byte(msgRestock))
		b = binary.AppendVarint(b, m.delta)
	case *setPaused:
		b = append(b, byte(msgSetPaused))
		b = wire.AppendBool(b, m.paused)
	case *endSale:
		b = append(b, byte(msgEndSale))
	case *cancelOrder:
		b = append(b, byte(msgCancel))
		b = binary.AppendUvarint(b, m.orderID)
	case *pay:
		b = append(b, byte(msgPay))
		b = binary.AppendUvarint(b, m.orderID)
		b = wire.AppendString(b, m.userID)
	case *getOrder:
		b = append(b, byte(msgGetOrder))
		b = binary.AppendUvarint(b, m.id)
	case *userOrders:
		b = append(b, byte(msgUserOrders))
		b = wire.AppendString(b, m.user)
		b = binary.AppendUvarint(b, uint64(m.limit))
	case orderList:
		b = append(b, byte(msgOrderList))
		b = binary.AppendUvarint(b, uint64(len(m)))
		for i := range m {
			b = appendOrder(b, &m[i])
		}
	default:
		panic(fmt.Sprintf("actors: encode %T", m))
	}
	return envelope(b)
}

func decode(v *wrapperspb.BytesValue) (message, error) {
	b := v.GetValue()
	if len(b) == 0 {
		return nil, errBadMessage
	}
	r := reader{wire.Reader{B: b[1:]}}
	var m message
	switch msgKind(b[0]) {
	case msgPurchase:
		m = &Purchase{Request: r.request()}
	case msgPurchaseCall:
		p := &purchaseCall{id: r.Uvarint()}
		p.req = r.request()
		m = p
	case msgReplies:
		n := r.Uvarint()
		if n == 0 || n > repliesMax {
			return nil, errBadMessage
		}
		rs := make(replies, 0, n)
		for range n {
			id := r.Uvarint()
			msg := r.reply()
			if msg == nil {
				return nil, errBadMessage
			}
			rs = append(rs, routedReply{id: id, msg: msg})
		}
		m = rs
	case msgPurchased, msgRejected:
		r.B = b
		if m = r.reply(); m == nil {
			return nil, errBadMessage
		}
	case msgGetItem:
		m = &getItem{}
	case msgItem:
		m = &itemReply{item: r.item()}
	case msgCreateItem:
		cmd, err := raftstore.Decode(r.B)
		c, ok := cmd.(*raftstore.CreateItem)
		if err != nil || !ok {
			return nil, errBadMessage
		}
		r.B = nil
		m = &createItem{cmd: *c}
	case msgRestock:
		m = &restock{delta: r.Varint()}
	case msgSetPaused:
		m = &setPaused{paused: r.Bool()}
	case msgPay:
		p := &pay{orderID: r.Uvarint()}
		p.userID = r.String(sale.IDLenMax)
		m = p
	case msgEndSale:
		m = &endSale{}
	case msgCancel:
		m = &cancelOrder{orderID: r.Uvarint()}
	case msgGetOrder:
		m = &getOrder{id: r.Uvarint()}
	case msgUserOrders:
		u := &userOrders{user: r.String(sale.IDLenMax)}
		n := r.Uvarint()
		if n < 1 || n > orderListMax {
			return nil, errBadMessage
		}
		u.limit = int(n)
		m = u
	case msgOrderList:
		n := r.Uvarint()
		if n > orderListMax {
			return nil, errBadMessage
		}
		l := make(orderList, 0, n)
		for range n {
			l = append(l, r.order())
		}
		m = l
	default:
		return nil, errBadMessage
	}
	if r.Done() != nil {
		return nil, errBadMessage
	}
	return m, nil
}

func appendRequest(b []byte, q *sale.Request) []byte {
	b = wire.AppendString(b, q.ItemID)
	b = wire.AppendString(b, q.UserID)
	b = wire.AppendString(b, q.RequestID)
	return binary.AppendVarint(b, int64(q.Quantity))
}

// appendReply appends a purchase's answer: its kind byte, then its fields.
func appendReply(b []byte, m message) []byte {
	switch m := m.(type) {
	case *Purchased:
		b = append(b, byte(msgPurchased))
		b = wire.AppendBool(b, m.Duplicate)
		return appendOrder(b, &m.Order)
	case *Rejected:
		b = append(b, byte(msgRejected))
		return binary.AppendUvarint(b, uint64(sale.WireOf(m.Err)))
	}
	panic(fmt.Sprintf("actors: reply %T", m))
}

func appendOrder(b []byte, o *orders.Order) []byte {
	b = binary.AppendUvarint(b, o.ID)
	b = wire.AppendString(b, o.ItemID)
	b = wire.AppendString(b, o.UserID)
	b = wire.AppendString(b, o.RequestID)
	b = binary.AppendVarint(b, int64(o.Quantity))
	b = wire.AppendString(b, string(o.Status))
	b = binary.AppendVarint(b, o.CreatedAt.UnixNano())
	b = binary.AppendVarint(b, int64(o.Shard))
	b = binary.AppendUvarint(b, o.LogIndex)
	var payBy int64
	if !o.PayBy.IsZero() {
		payBy = o.PayBy.UnixNano()
	}
	return binary.AppendVarint(b, payBy)
}

func appendItem(b []byte, it *sale.Item) []byte {
	b = wire.AppendString(b, it.ID)
	b = wire.AppendString(b, it.Name)
	b = binary.AppendVarint(b, it.Stock)
	b = binary.AppendVarint(b, it.Remaining)
	b = binary.AppendVarint(b, int64(it.PerUserLimit))
	b = binary.AppendVarint(b, it.StartsAt)
	b = binary.AppendVarint(b, it.EndsAt)
	b = wire.AppendBool(b, it.Paused)
	return binary.AppendVarint(b, it.CreatedAt)
}

// reader decodes our messages on top of wire.Reader.
type reader struct{ wire.Reader }

// strMax bounds other strings in messages; IDs and names are bounded by
// sale's limits, as in the Raft log, so that a purchase from another node
// can never carry what the log would refuse.
const strMax = 1024

func (r *reader) request() sale.Request {
	var q sale.Request
	q.ItemID = r.String(sale.IDLenMax)
	q.UserID = r.String(sale.IDLenMax)
	q.RequestID = r.String(sale.IDLenMax)
	q.Quantity = r.Int32()
	return q
}

// reply reads what appendReply wrote; nil if it is not a reply.
func (r *reader) reply() message {
	if len(r.B) == 0 {
		return nil
	}
	kind := msgKind(r.B[0])
	r.B = r.B[1:]
	switch kind {
	case msgPurchased:
		p := &Purchased{Duplicate: r.Bool()}
		p.Order = r.order()
		return p
	case msgRejected:
		c := r.Uvarint()
		err, ok := sale.FromWire(uint8(c))
		if c > 255 || !ok {
			// A number from a newer version: the caller cannot tell what
			// happened, so it must not report a definite answer.
			err = sale.ErrUnknownOutcome
		}
		return &Rejected{Err: err}
	}
	return nil
}

func (r *reader) order() orders.Order {
	var o orders.Order
	o.ID = r.Uvarint()
	o.ItemID = r.String(sale.IDLenMax)
	o.UserID = r.String(sale.IDLenMax)
	o.RequestID = r.String(sale.IDLenMax)
	o.Quantity = r.Int32()
	o.Status = orders.Status(r.String(strMax))
	o.CreatedAt = time.Unix(0, r.Varint()).UTC()
	o.Shard = int(r.Int32())
	o.LogIndex = r.Uvarint()
	if payBy := r.Varint(); payBy != 0 {
		o.PayBy = time.Unix(0, payBy).UTC()
	}
	return o
}

func (r *reader) item() sale.Item {
	var it sale.Item
	it.ID = r.String(sale.IDLenMax)
	it.Name = r.String(sale.NameLenMax)
	it.Stock = r.Varint()
	it.Remaining = r.Varint()
	it.PerUserLimit = r.Int32()
	it.StartsAt = r.Varint()
	it.EndsAt = r.Varint()
	it.Paused = r.Bool()
	it.CreatedAt = r.Varint()
	return it
}
