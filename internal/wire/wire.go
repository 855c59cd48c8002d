// Package wire holds the primitives of Flashstock's binary formats (Raft
// commands, messages between nodes): varints, length-prefixed strings and
// a Reader that accepts only the canonical form Append* writes and
// remembers its first error, so that decoders check once at the end and
// never panic on hostile input.
package wire

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed is the Reader's error for input that is not canonical.
var ErrMalformed = errors.New("wire: malformed input")

// AppendString appends a length-prefixed string.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBool appends a flag byte, 0 or 1.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// Reader reads fields in order from B. After the first error every read
// returns a zero value and Err stays set.
type Reader struct {
	B   []byte
	Err error
}

func (r *Reader) fail() {
	if r.Err == nil {
		r.Err = ErrMalformed
	}
	r.B = nil
}

// Done reports the first error, or an error if bytes are left over.
func (r *Reader) Done() error {
	if r.Err == nil && len(r.B) != 0 {
		return ErrMalformed
	}
	return r.Err
}

// Varint reads a signed varint in its shortest encoding.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.B)
	if n <= 0 || n != varintLen(v) {
		r.fail()
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Uvarint reads an unsigned varint in its shortest encoding.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.B)
	if n <= 0 || n != uvarintLen(v) {
		r.fail()
		return 0
	}
	r.B = r.B[n:]
	return v
}

// Int32 reads a varint that must fit an int32.
func (r *Reader) Int32() int32 {
	v := r.Varint()
	if v < -1<<31 || v > 1<<31-1 {
		r.fail()
		return 0
	}
	return int32(v)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.B) == 0 {
		r.fail()
		return 0
	}
	b := r.B[0]
	r.B = r.B[1:]
	return b
}

// Bool reads a flag byte, which must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail()
	return false
}

// String reads a length-prefixed string of at most max bytes.
func (r *Reader) String(max int) string {
	n := r.Uvarint()
	if n > uint64(max) || n > uint64(len(r.B)) {
		r.fail()
		return ""
	}
	s := string(r.B[:n])
	r.B = r.B[n:]
	return s
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
