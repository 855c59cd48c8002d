package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
)

// decodeGeneral is the reference: the strict encoding/json decoder the
// handler falls back to.
func decodeGeneral(b []byte) (purchaseBody, error) {
	var body purchaseBody
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return body, err
	}
	if dec.More() {
		return body, errTrailing
	}
	return body, nil
}

var errTrailing = invalid("trailing data")

func samePurchaseBody(a, b purchaseBody) bool {
	if (a.Quantity == nil) != (b.Quantity == nil) || a.RequestID != b.RequestID {
		return false
	}
	return a.Quantity == nil || *a.Quantity == *b.Quantity
}

func TestParsePurchaseFast(t *testing.T) {
	two := int32(2)
	tests := []struct {
		in   string
		ok   bool
		want purchaseBody
	}{
		{`{}`, true, purchaseBody{}},
		{` { } `, true, purchaseBody{}},
		{`{"quantity":2}`, true, purchaseBody{Quantity: &two}},
		{`{"request_id":"r-1","quantity":2}`, true, purchaseBody{Quantity: &two, RequestID: "r-1"}},
		{"{\n \"quantity\" : 2 ,\"request_id\":\"x\"\n}\n", true, purchaseBody{Quantity: &two, RequestID: "x"}},
		{`{"quantity":null}`, true, purchaseBody{}},
		{`{"quantity":1.5}`, false, purchaseBody{}},
		{`{"quantity":1e2}`, false, purchaseBody{}},
		{`{"quantity":01}`, false, purchaseBody{}},
		{`{"quantity":99999999999}`, false, purchaseBody{}},
		{`{"quantity":"1"}`, false, purchaseBody{}},
		{`{"quantity":1,"quantity":2}`, false, purchaseBody{}},
		{`{"other":1}`, false, purchaseBody{}},
		{`{"request_id":"a\"b"}`, false, purchaseBody{}},
		{`{"request_id":"é"}`, false, purchaseBody{}},
		{`{"quantity":1}x`, false, purchaseBody{}},
		{`{"quantity":1,}`, false, purchaseBody{}},
		{`[]`, false, purchaseBody{}},
		{``, false, purchaseBody{}},
	}
	for _, tt := range tests {
		got, ok := parsePurchaseFast([]byte(tt.in))
		if ok != tt.ok || (ok && !samePurchaseBody(got, tt.want)) {
			t.Errorf("parsePurchaseFast(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzPurchaseBodyFast: whatever the fast path accepts, the general
// decoder accepts too, with the same result.
func FuzzPurchaseBodyFast(f *testing.F) {
	for _, s := range []string{`{}`, `{"quantity":1}`, `{"request_id":"r","quantity":-3}`, `{"quantity":null,"request_id":null}`, ` {"quantity" : 7 } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parsePurchaseFast(b)
		if !ok {
			return
		}
		ref, err := decodeGeneral(b)
		if err != nil {
			t.Fatalf("fast path accepted %q; encoding/json rejects it: %v", b, err)
		}
		if !samePurchaseBody(fast, ref) {
			t.Fatalf("%q: fast %+v; encoding/json %+v", b, fast, ref)
		}
	})
}

func BenchmarkParsePurchaseFast(b *testing.B) {
	body := []byte(`{"quantity":1,"request_id":"req-123456"}`)
	b.ReportAllocs()
	for b.Loop() {
		parsePurchaseFast(body)
	}
}

func TestAppendOrderJSONMatchesEncodingJSON(t *testing.T) {
	for _, o := range []orders.Order{
		{ID: 504403158265823232, ItemID: "phone", UserID: "alice", Quantity: 1, Status: orders.StatusConfirmed, CreatedAt: time.Date(2026, 11, 28, 9, 31, 26, 462390402, time.UTC)},
		{ID: 1, ItemID: "a.b:c-d_e", UserID: "u", RequestID: "r-1", Quantity: 3, Status: orders.StatusPaid, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ID: 2, ItemID: "i", UserID: "u", Quantity: 1, Status: orders.StatusConfirmed, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), PayBy: time.Date(2026, 1, 2, 3, 19, 5, 6, time.UTC)},
		// IDs that need escaping never come from the API, which checks the
		// ID alphabet; the encoder must still write valid JSON for them.
		{ID: 3, ItemID: `i"<x>`, UserID: "u\\n\x01", RequestID: "é", Quantity: 1, Status: orders.StatusConfirmed, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(toOrderJSON(o)); err != nil {
			t.Fatal(err)
		}
		if got, err := appendOrderJSON(nil, &o); err != nil || string(got) != want.String() {
			t.Errorf("appendOrderJSON(%+v) =\n%s, %v; want\n%s", o, got, err, want.String())
		}
	}
}
