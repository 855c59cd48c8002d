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

// topKeys lists the keys of a top-level JSON object in order, duplicates
// included: the test's own reading, independent of checkKeys.
func topKeys(b []byte) ([]string, bool) {
	var raw map[string]json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil, false
		}
	}
	return keys, true
}

func TestDecodePurchaseBodyStrict(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"quantity":1}`, true},
		{`{"request_id":"r1"}`, true},
		{`{"quantity":1,"request_id":"r\u0031"}`, true}, // escapes: the slow path
		{`{"quantity":1, "request_id": "r1" }`, true},
		{`  `, true},
		// Last key wins in encoding/json: refused, on both paths.
		{`{"quantity":1,"quantity":5}`, false},
		{`{"quantity":1,"request_id":"r\u0031","quantity":5}`, false},
		{`{"request_id":"a","request_id":"b"}`, false},
		{`{"request_id":"a\u0062","request_id":"b"}`, false},
		// Case-insensitive matching in encoding/json: refused.
		{`{"QUANTITY":3}`, false},
		{`{"Quantity":3}`, false},
		{`{"quantity":1,"Request_ID":"r"}`, false},
		{`{"quantıty":3}`, false}, // dotless i
		{`{"qty":1}`, false},
		{`{"quantity":{"a":1}}`, false},
	}
	for _, tt := range tests {
		_, err := decodePurchaseBody([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("decodePurchaseBody(%s) = %v; want ok %v", tt.in, err, tt.ok)
		}
	}
}

func TestDecodeStrictOtherBodies(t *testing.T) {
	var c createItemBody
	for _, in := range []string{
		`{"id":"a","stock":1,"stock":1000000000}`,
		`{"ID":"a","stock":1}`,
		`{"id":"a","Stock":1}`,
		`{"id":"a","stock":1,"per_user_limit":1,"PER_USER_LIMIT":2}`,
	} {
		if err := decodeStrict([]byte(in), &c); err == nil {
			t.Errorf("decodeStrict(%s, createItemBody) = nil; want an error", in)
		}
	}
	if err := decodeStrict([]byte(`{"id":"a","name":"A","stock":1,"per_user_limit":2,"starts_at":"2026-11-11T00:00:00Z","ends_at":null}`), &c); err != nil {
		t.Errorf("decodeStrict(a full create body) = %v; want nil", err)
	}
	var r restockBody
	if err := decodeStrict([]byte(`{"delta":1,"delta":-1}`), &r); err == nil {
		t.Error("decodeStrict(duplicate delta) = nil; want an error")
	}
}

// FuzzDecodePurchaseBody: whatever the purchase decoder accepts names each
// field exactly and at most once, and decodes to what encoding/json makes
// of it.
func FuzzDecodePurchaseBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"quantity":1}`, `{"quantity":1,"quantity":5}`, `{"QUANTITY":3}`,
		`{"request_id":"r\u0031","quantity":2}`, `{"Request_id":"x"}`, ` `, `{"quantity":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodePurchaseBody(b)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return
		}
		keys, ok := topKeys(b)
		if !ok {
			t.Fatalf("accepted %q, which is not one JSON object", b)
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if k != "quantity" && k != "request_id" {
				t.Fatalf("accepted %q with key %q", b, k)
			}
			if seen[k] {
				t.Fatalf("accepted %q with key %q twice", b, k)
			}
			seen[k] = true
		}
		ref, err := decodeGeneral(b)
		if err != nil || !samePurchaseBody(got, ref) {
			t.Fatalf("%q: decoded %+v; encoding/json %+v, %v", b, got, ref, err)
		}
	})
}
