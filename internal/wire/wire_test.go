package wire

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = binary.AppendVarint(b, math.MinInt64)
	b = binary.AppendUvarint(b, math.MaxUint64)
	b = AppendString(b, "héllo")
	b = AppendBool(b, true)
	b = binary.AppendVarint(b, -7)
	r := Reader{B: b}
	if got := r.Varint(); got != math.MinInt64 {
		t.Errorf("Varint() = %d; want %d", got, int64(math.MinInt64))
	}
	if got := r.Uvarint(); got != math.MaxUint64 {
		t.Errorf("Uvarint() = %d; want max", got)
	}
	if got := r.String(16); got != "héllo" {
		t.Errorf("String() = %q; want %q", got, "héllo")
	}
	if !r.Bool() {
		t.Error("Bool() = false; want true")
	}
	if got := r.Int32(); got != -7 {
		t.Errorf("Int32() = %d; want -7", got)
	}
	if err := r.Done(); err != nil {
		t.Errorf("Done() = %v; want nil", err)
	}
}

func TestRejectsNonCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(*Reader)
	}{
		{"overlong uvarint", []byte{0x80, 0x00}, func(r *Reader) { r.Uvarint() }},
		{"overlong varint", []byte{0x81, 0x00}, func(r *Reader) { r.Varint() }},
		{"truncated varint", []byte{0x80}, func(r *Reader) { r.Varint() }},
		{"bool 2", []byte{2}, func(r *Reader) { r.Bool() }},
		{"string over max", AppendString(nil, "abcdef"), func(r *Reader) { r.String(3) }},
		{"string past the end", []byte{5, 'a'}, func(r *Reader) { r.String(10) }},
		{"int32 overflow", binary.AppendVarint(nil, 1<<40), func(r *Reader) { r.Int32() }},
		{"trailing byte", []byte{0, 0}, func(r *Reader) { r.Byte() }},
	}
	for _, tt := range tests {
		r := Reader{B: tt.in}
		tt.read(&r)
		if r.Done() == nil {
			t.Errorf("%s: Done() = nil; want ErrMalformed", tt.name)
		}
	}
}
