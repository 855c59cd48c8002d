package loadgen

import (
	"encoding/json"
	"testing"
)

func TestDecodeOrder(t *testing.T) {
	tests := []struct {
		in      string
		want    OrderView
		wantErr bool
	}{
		{`{"order_id":"42","item_id":"a","user_id":"u","quantity":1,"status":"confirmed"}`,
			OrderView{OrderID: "42", ItemID: "a", UserID: "u", Quantity: 1, Status: "confirmed"}, false},
		{`{"order_id":18446744073709551615,"item_id":7}`, OrderView{OrderID: "18446744073709551615", ItemID: "7"}, false},
		{`{"order_id":null}`, OrderView{}, true},
		{`{"item_id":"a"}`, OrderView{}, true},
		{`{"order_id":"1","quantity":"one"}`, OrderView{}, true},
		{`[]`, OrderView{}, true},
		{``, OrderView{}, true},
	}
	for _, tt := range tests {
		got, err := decodeOrder([]byte(tt.in))
		if (err != nil) != tt.wantErr || (err == nil && (got.OrderID != tt.want.OrderID || got.ItemID != tt.want.ItemID ||
			got.UserID != tt.want.UserID || got.Quantity != tt.want.Quantity || got.Status != tt.want.Status)) {
			t.Errorf("decodeOrder(%s) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	got, err := decodeOrder([]byte(`{"order_id":"9","persisted":true}`))
	if err != nil || got.Persisted == nil || !*got.Persisted {
		t.Errorf("decodeOrder(persisted) = %+v, %v; want persisted true", got, err)
	}
}

func FuzzDecodeOrder(f *testing.F) {
	f.Add([]byte(`{"order_id":"42","item_id":"a","user_id":"u","quantity":1,"status":"confirmed","persisted":false}`))
	f.Add([]byte(`{"order_id":12,"item_id":null}`))
	f.Add([]byte(`{"error":{"code":"sold_out","message":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := decodeOrder(b)
		if err == nil && o.OrderID == "" {
			t.Fatalf("decodeOrder(%q) accepted an order without an ID", b)
		}
		var e apiError
		_ = json.Unmarshal(b, &e)
	})
}

func TestFmtUs(t *testing.T) {
	tests := []struct {
		us   uint64
		want string
	}{
		{0, "0µs"}, {999, "999µs"}, {1000, "1.00ms"}, {12_345, "12.35ms"}, {2_500_000, "2.50s"},
	}
	for _, tt := range tests {
		if got := fmtUs(tt.us); got != tt.want {
			t.Errorf("fmtUs(%d) = %q; want %q", tt.us, got, tt.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var p progress
	p.requests[OutcomeConfirmed] = 5
	p.requests[OutcomeReplayed] = 2
	p.requests[OutcomeSoldOut] = 7
	p.requests[OutcomeRateLimited] = 1
	p.requests[OutcomeOverloaded] = 2
	p.requests[OutcomeTimeout] = 3
	p.requests[OutcomePage] = 9
	p.dropped, p.intervalN, p.intervalP50, p.intervalP99 = 4, 500, 800, 12_000
	got := progressLine(p, 3e9, 5e8)
	want := "[   3.0s] rate=1000/s confirmed=5 sold_out=7 rejected=3 other=3 dropped=4 inflight=0 p50=800µs p99=12.00ms"
	if got != want {
		t.Errorf("progressLine() = %q; want %q", got, want)
	}
}
