package raftstore_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/flashstock/flashstock/raftstore"
)

// encoder is implemented by every command type.
type encoder interface {
	Encode(dst []byte) ([]byte, error)
}

// must returns an encoding of a command that is inside the log's bounds.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// reencode encodes a command that Decode returned.
func reencode(t testing.TB, cmd any) []byte {
	t.Helper()
	e, ok := cmd.(encoder)
	if !ok {
		t.Fatalf("Decode returned %T, which has no Encode", cmd)
	}
	return must(e.Encode(nil))
}

func manyPurchases(n int) []raftstore.Purchase {
	ps := make([]raftstore.Purchase, n)
	for i := range ps {
		ps[i] = raftstore.Purchase{UserID: "u" + strings.Repeat("x", i%7), RequestID: "", Quantity: int32(i%5 + 1)}
	}
	return ps
}

// commandCases are valid commands of every type, at their edges.
func commandCases() []struct {
	name string
	cmd  encoder
} {
	long := strings.Repeat("i", 64)
	return []struct {
		name string
		cmd  encoder
	}{
		{"create", &raftstore.CreateItem{Stamp: 1_700_000_000_000_000_000, ID: "sku-1", Name: "Phone", Stock: 100, PerUserLimit: 2, StartsAt: 10, EndsAt: 20}},
		{"create zero", &raftstore.CreateItem{}},
		{"create extremes", &raftstore.CreateItem{Stamp: math.MinInt64, ID: long, Name: strings.Repeat("n", 256), Stock: math.MaxInt64, PerUserLimit: math.MaxInt32, StartsAt: math.MinInt64, EndsAt: math.MaxInt64}},
		{"create negative limit", &raftstore.CreateItem{ID: "a", PerUserLimit: math.MinInt32, Stock: -1}},
		{"create unicode name", &raftstore.CreateItem{ID: "a", Name: "téléphone ☎"}},
		{"purchase one", &raftstore.PurchaseBatch{Stamp: 5, ItemID: "sku-1", Purchases: []raftstore.Purchase{{UserID: "u1", RequestID: "r1", Quantity: 1}}}},
		{"purchase empty", &raftstore.PurchaseBatch{Stamp: 5, ItemID: "sku-1", Purchases: []raftstore.Purchase{}}},
		{"purchase extremes", &raftstore.PurchaseBatch{Stamp: math.MaxInt64, ItemID: long, Purchases: []raftstore.Purchase{
			{UserID: long, RequestID: long, Quantity: math.MaxInt32},
			{UserID: "", RequestID: "", Quantity: math.MinInt32},
			{UserID: "u", Quantity: 0},
		}}},
		{"purchase max batch", &raftstore.PurchaseBatch{Stamp: 1, ItemID: "x", Purchases: manyPurchases(4096)}},
		{"entry one group", &raftstore.PurchaseEntry{Stamp: 5, Groups: []raftstore.PurchaseGroup{{ItemID: "a", Purchases: []raftstore.Purchase{{UserID: "u1", RequestID: "r1", Quantity: 1}}}}}},
		{"entry groups", &raftstore.PurchaseEntry{Stamp: 6, PayWindow: 900, Groups: []raftstore.PurchaseGroup{
			{ItemID: "a", Purchases: manyPurchases(3)}, {ItemID: long, Purchases: manyPurchases(1)}, {ItemID: "a", Purchases: manyPurchases(2)}}}},
		{"entry max purchases", &raftstore.PurchaseEntry{Stamp: 7, Groups: []raftstore.PurchaseGroup{
			{ItemID: "a", Purchases: manyPurchases(4000)}, {ItemID: "b", Purchases: manyPurchases(96)}}}},
		{"mark flushed", &raftstore.MarkFlushed{Stamp: 9, UpTo: 1 << 40}},
		{"mark flushed max", &raftstore.MarkFlushed{Stamp: -1, UpTo: math.MaxUint64}},
		{"mark flushed zero", &raftstore.MarkFlushed{}},
		{"restock up", &raftstore.Restock{Stamp: 3, ItemID: "sku-1", Delta: 50}},
		{"restock down", &raftstore.Restock{Stamp: 3, ItemID: "sku-1", Delta: -50}},
		{"restock extremes", &raftstore.Restock{Stamp: math.MinInt64, ItemID: long, Delta: math.MinInt64}},
		{"pause", &raftstore.SetPaused{Stamp: 4, ItemID: "sku-1", Paused: true}},
		{"resume", &raftstore.SetPaused{Stamp: 4, ItemID: "sku-1", Paused: false}},
		{"cancel", &raftstore.Cancel{Stamp: 11, OrderID: 1<<56 | 7<<16 | 3}},
		{"cancel extremes", &raftstore.Cancel{Stamp: math.MinInt64, OrderID: math.MaxUint64}},
		{"end sale", &raftstore.EndSale{Stamp: 12, ItemID: "sku-1"}},
		{"end sale long id", &raftstore.EndSale{Stamp: math.MaxInt64, ItemID: long}},
		{"outbox append", &raftstore.OutboxAppend{Stamp: 13}},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range commandCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := must(tc.cmd.Encode(nil))
			got, err := raftstore.Decode(data)
			if err != nil {
				t.Fatalf("Decode(%x) = %v; want nil", data, err)
			}
			if !reflect.DeepEqual(got, tc.cmd) {
				t.Errorf("Decode(Encode(%+v)) = %+v; want the original", tc.cmd, got)
			}
			if again := reencode(t, got); !bytes.Equal(again, data) {
				t.Errorf("Encode(Decode(%x)) = %x; want the same bytes", data, again)
			}
		})
	}
}

func TestCommandTypeByte(t *testing.T) {
	// The type numbers are part of the on-disk format.
	tests := []struct {
		cmd  encoder
		want raftstore.CommandType
	}{
		{&raftstore.CreateItem{}, 1},
		{&raftstore.PurchaseBatch{}, 2},
		{&raftstore.MarkFlushed{}, 3},
		{&raftstore.Restock{}, 4},
		{&raftstore.SetPaused{}, 5},
		{&raftstore.Pay{}, 6},
		{&raftstore.Expire{}, 7},
		{&raftstore.PurchaseEntry{Groups: []raftstore.PurchaseGroup{{ItemID: "a", Purchases: manyPurchases(1)}}}, 8},
		{&raftstore.Cancel{}, 9},
		{&raftstore.EndSale{}, 10},
		{&raftstore.OutboxAppend{}, 11},
	}
	for _, tc := range tests {
		if got := raftstore.CommandType(must(tc.cmd.Encode(nil))[0]); got != tc.want {
			t.Errorf("Encode(%T)[0] = %d; want %d", tc.cmd, got, tc.want)
		}
	}
	if raftstore.CmdCreateItem != 1 || raftstore.CmdPurchase != 2 || raftstore.CmdMarkFlushed != 3 ||
		raftstore.CmdRestock != 4 || raftstore.CmdSetPaused != 5 {
		t.Errorf("command type constants were renumbered")
	}
}

func TestEncodeAppends(t *testing.T) {
	for _, tc := range commandCases() {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			out := must(tc.cmd.Encode(append([]byte(nil), prefix...)))
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("Encode(%q) = %q; want it to keep the prefix", prefix, out[:len(prefix)])
			}
			if want := must(tc.cmd.Encode(nil)); !bytes.Equal(out[len(prefix):], want) {
				t.Errorf("Encode(prefix) appended %x; want %x", out[len(prefix):], want)
			}
		})
	}
}

func uvarint(v uint64) []byte { return binary.AppendUvarint(nil, v) }
func varint(v int64) []byte   { return binary.AppendVarint(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func str(s string) []byte { return cat(uvarint(uint64(len(s))), []byte(s)) }

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"type 0", []byte{0}},
		{"type 6", []byte{6, 0, 0}},
		{"type 255", []byte{255}},
		{"type only", []byte{1}},
		{"trailing byte", append(must((&raftstore.MarkFlushed{Stamp: 1, UpTo: 2}).Encode(nil)), 0)},
		{"id too long", cat([]byte{4}, varint(1), str(strings.Repeat("i", 65)), varint(1))},
		{"name too long", cat([]byte{1}, varint(1), str("a"), str(strings.Repeat("n", 257)), varint(1), varint(1), varint(0), varint(0))},
		{"string longer than data", cat([]byte{4}, varint(1), uvarint(10), []byte("abc"))},
		{"too many purchases", cat([]byte{2}, varint(1), str("a"), uvarint(4097), bytes.Repeat([]byte{0, 0, 2}, 4097))},
		{"purchase count beyond data", cat([]byte{2}, varint(1), str("a"), uvarint(3), []byte{0, 0, 2})},
		{"purchase count huge", cat([]byte{2}, varint(1), str("a"), uvarint(math.MaxUint64))},
		{"limit over int32", cat([]byte{1}, varint(1), str("a"), str(""), varint(1), varint(math.MaxInt32+1), varint(0), varint(0))},
		{"limit under int32", cat([]byte{1}, varint(1), str("a"), str(""), varint(1), varint(math.MinInt32-1), varint(0), varint(0))},
		{"quantity over int32", cat([]byte{2}, varint(1), str("a"), uvarint(1), str("u"), str(""), varint(math.MaxInt32+1))},
		{"varint overflow", cat([]byte{3}, bytes.Repeat([]byte{0xff}, 10), []byte{0x7f}, uvarint(1))},
		{"pause flag missing", cat([]byte{5}, varint(1), str("a"))},
		{"entry without groups", cat([]byte{8}, varint(1), varint(0), uvarint(0))},
		{"entry with an empty group", cat([]byte{8}, varint(1), varint(0), uvarint(1), str("a"), uvarint(0))},
		{"entry over the bound across groups", cat([]byte{8}, varint(1), varint(0), uvarint(2),
			str("a"), uvarint(4000), bytes.Repeat([]byte{0, 0, 2}, 4000), str("b"), uvarint(97), bytes.Repeat([]byte{0, 0, 2}, 97))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := raftstore.Decode(tc.data); err == nil {
				t.Errorf("Decode(%x) = %+v, nil; want an error", tc.data, got)
			}
		})
	}
}

// TestDecodeRejectsTruncated cuts every valid encoding at every length.
func TestDecodeRejectsTruncated(t *testing.T) {
	for _, tc := range commandCases() {
		if _, ok := tc.cmd.(*raftstore.PurchaseBatch); ok && len(tc.cmd.(*raftstore.PurchaseBatch).Purchases) > 16 {
			continue // quadratic; the small batches cover the same paths
		}
		if e, ok := tc.cmd.(*raftstore.PurchaseEntry); ok && len(e.Groups[0].Purchases) > 16 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			data := must(tc.cmd.Encode(nil))
			for n := 0; n < len(data); n++ {
				if got, err := raftstore.Decode(data[:n]); err == nil {
					t.Errorf("Decode(%x) = %+v, nil; want an error (truncated to %d of %d bytes)", data[:n], got, n, len(data))
				}
			}
		})
	}
}

// TestDecodeRejectsNonCanonical: every replica must read a committed entry
// the same way, and the FuzzDecode property is that whatever Decode accepts
// re-encodes to the same bytes. An encoding that Encode never produces
// (an overlong varint, a flag byte other than 0 or 1) breaks that.
func TestDecodeRejectsNonCanonical(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"pause flag 2", cat([]byte{5}, varint(1), str("a"), []byte{2})},
		{"pause flag 255", cat([]byte{5}, varint(1), str("a"), []byte{255})},
		{"overlong stamp", cat([]byte{3}, []byte{0x80, 0x00}, uvarint(1))},
		{"overlong watermark", cat([]byte{3}, varint(1), []byte{0x81, 0x80, 0x00})},
		{"overlong string length", cat([]byte{4}, varint(1), []byte{0x81, 0x00}, []byte("a"), varint(1))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := raftstore.Decode(tc.data)
			if err != nil {
				return // rejected: fine
			}
			if again := reencode(t, got); !bytes.Equal(again, tc.data) {
				t.Errorf("Decode(%x) = %+v, nil; it re-encodes to %x: want an error for a non-canonical encoding", tc.data, got, again)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range commandCases() {
		if b, ok := tc.cmd.(*raftstore.PurchaseBatch); ok && len(b.Purchases) > 16 {
			continue
		}
		f.Add(must(tc.cmd.Encode(nil)))
	}
	for _, garbage := range [][]byte{
		nil, {0}, {1}, {2}, {3}, {4}, {5}, {6}, {255},
		{2, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0x0f},
		{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		[]byte("\x02\x00\x01a\x02\x01u\x00\x02"),
		[]byte("not a command"),
	} {
		f.Add(garbage)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := raftstore.Decode(data)
		if err != nil {
			if cmd != nil {
				t.Fatalf("Decode(%x) = %+v, %v; want a nil command with an error", data, cmd, err)
			}
			return
		}
		if again := reencode(t, cmd); !bytes.Equal(again, data) {
			t.Fatalf("Encode(Decode(%x)) = %x; want the same bytes", data, again)
		}
	})
}
