//go:build linux

package faults

import (
	"fmt"
	"testing"
)

func TestNetlinkEncoding(t *testing.T) {
	// A packet message's attributes: NFQA_PACKET_HDR carries the id big-endian.
	attrs := append(nlattr(9, []byte{1, 2, 3}), nlattr(nfqaPacketHdr, []byte{0, 0, 1, 2, 0x08, 0x00, 3})...)
	if len(attrs)%4 != 0 {
		t.Fatalf("attributes not aligned: %d bytes", len(attrs))
	}
	id, ok := packetID(attrs)
	if !ok || id != 258 {
		t.Fatalf("packetID = %d, %v; want 258, true", id, ok)
	}
	if _, ok := packetID([]byte{200, 0, 1, 0}); ok {
		t.Error("packetID accepted a truncated attribute")
	}
	if got := fmt.Sprint(align4(5), align4(8)); got != "8 8" {
		t.Errorf("align4 = %s; want 8 8", got)
	}
}
