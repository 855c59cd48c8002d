package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeOrder(t *testing.T) {
	tests := []struct {
		in      string
		want    OrderView
		wantErr bool
	}{
		{`{"order_id":"42","item_id":"a","user_id":"u","request_id":"r","quantity":1,"status":"confirmed"}`,
			OrderView{OrderID: "42", ItemID: "a", UserID: "u", RequestID: "r", Quantity: 1, Status: "confirmed"}, false},
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
			got.UserID != tt.want.UserID || got.RequestID != tt.want.RequestID || got.Quantity != tt.want.Quantity || got.Status != tt.want.Status)) {
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
		var e errorBody
		_ = json.Unmarshal(b, &e)
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// echoHeaders answers with the request's auth headers and body type.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"auth": r.Header.Get("Authorization"), "user": r.Header.Get("X-User-ID"), "type": r.Header.Get("Content-Type"),
	})
}

func TestDoAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(echoHeaders))
	defer srv.Close()
	tests := []struct {
		name  string
		token string
		who   Auth
		body  any
		want  map[string]string
	}{
		{"admin", "tok", AsAdmin, nil, map[string]string{"auth": "Bearer tok", "user": "", "type": ""}},
		{"shopper", "tok", AsUser("u1"), map[string]int{"quantity": 1}, map[string]string{"auth": "", "user": "u1", "type": "application/json"}},
		{"buyer without a token", "", Auth{User: "u2", Admin: true}, nil, map[string]string{"auth": "", "user": "u2", "type": ""}},
		{"nobody", "tok", Auth{}, nil, map[string]string{"auth": "", "user": "", "type": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{Targets: []string{srv.URL + "/"}, AdminToken: tt.token, Timeout: time.Second})
			defer c.Close()
			r := c.Do(context.Background(), Any, http.MethodPost, "/x", tt.body, tt.who)
			var got map[string]string
			if err := json.Unmarshal(r.Body, &got); err != nil || r.Status != 200 {
				t.Fatalf("Do() = %d %q, %v", r.Status, r.Body, r.Err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("header %s = %q; want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestDoAnswers(t *testing.T) {
	big := strings.Repeat("x", 2*bodyMax)
	mux := http.NewServeMux()
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"m"}}`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, big) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/no-order", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"status":"confirmed"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := New(Config{Targets: []string{srv.URL}, Timeout: 200 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()

	r := c.Do(ctx, 0, http.MethodGet, "/unavailable", nil, Auth{})
	if r.Outcome != OutcomeUnavailable || r.Code != "unavailable" || r.RetryAfter != time.Second || r.Target != 0 {
		t.Errorf("503 unavailable: %+v; want outcome unavailable, code, Retry-After 1s", r)
	}
	var se *StatusError
	if err := r.Expect(http.StatusOK); !errors.As(err, &se) || se.Status != 503 || !Transient(err) || err.Error() != "HTTP 503 unavailable" {
		t.Errorf("Expect(200) = %v; want a transient *StatusError 503", err)
	}
	if r := c.Do(ctx, 0, http.MethodGet, "/big", nil, Auth{}); len(r.Body) != bodyMax || r.Err != nil {
		t.Errorf("big body: read %d bytes, err %v; want %d", len(r.Body), r.Err, bodyMax)
	}
	if r := c.Do(ctx, 0, http.MethodGet, "/slow", nil, Auth{}); r.Outcome != OutcomeTimeout || r.Status != 0 {
		t.Errorf("slow answer: %v status %d, %v; want a timeout", r.Outcome, r.Status, r.Err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if r := c.Do(done, 0, http.MethodGet, "/slow", nil, Auth{}); r.Outcome != OutcomeCanceled {
		t.Errorf("cancelled: %v; want canceled", r.Outcome)
	}
	if r, o := c.Purchase(ctx, Any, "i", "u", "r", 1); r.Outcome != OutcomeNotFound || o.OrderID != "" {
		t.Errorf("Purchase() answered 404 = %v %+v; want not_found without an order", r.Outcome, o)
	}
	if r := c.Do(ctx, 0, http.MethodPost, "/no-order", nil, Auth{}); r.Outcome != OutcomeConfirmed {
		t.Errorf("Do(201) = %v; want confirmed", r.Outcome)
	}
	if Transient(&StatusError{Status: 409, Code: "sold_out"}) || !Transient(errors.New("EOF")) {
		t.Error("Transient: want 409 permanent, transport errors transient")
	}
}

// shop answers the typed calls the way a node does.
func shop(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/items/{id}/purchase", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "bad" {
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"status":"confirmed"}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"order_id":"7","item_id":"`+r.PathValue("id")+`","user_id":"`+r.Header.Get("X-User-ID")+`","quantity":2}`)
	})
	mux.HandleFunc("GET /v1/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":"`+r.PathValue("id")+`","stock":10,"remaining":7,"sold":3,"per_user_limit":2,"status":"on_sale"}`)
	})
	mux.HandleFunc("POST /v1/items", func(w http.ResponseWriter, r *http.Request) {
		var it NewItem
		_ = json.NewDecoder(r.Body).Decode(&it)
		if it.ID == "old" {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"item_exists","message":"m"}}`)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /v1/cluster/status", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"node":"n0","shards":[{"id":0,"leader":"n2","term":4,"unflushed_orders":12}]}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTypedCalls(t *testing.T) {
	c := New(Config{Targets: []string{shop(t).URL}, AdminToken: "tok", Timeout: time.Second})
	defer c.Close()
	ctx := context.Background()
	r, o := c.Purchase(ctx, Any, "a", "u1", "r1", 2)
	if r.Outcome != OutcomeConfirmed || o != (OrderView{OrderID: "7", ItemID: "a", UserID: "u1", Quantity: 2}) {
		t.Errorf("Purchase() = %v %+v; want confirmed order 7", r.Outcome, o)
	}
	if r, _ := c.Purchase(ctx, Any, "bad", "u1", "r1", 1); r.Outcome != OutcomeBadResponse || !errors.Is(r.Err, errNoOrderID) {
		t.Errorf("Purchase(no order_id) = %v, %v; want bad_response", r.Outcome, r.Err)
	}
	if it, err := c.Item(ctx, 0, "a"); err != nil || it.Sold != 3 || it.Remaining != 7 || it.PerUserLimit != 2 {
		t.Errorf("Item() = %+v, %v", it, err)
	}
	if err := c.CreateItem(ctx, Any, NewItem{ID: "old", Stock: 1}); !errors.Is(err, ErrItemExists) {
		t.Errorf("CreateItem(existing) = %v; want ErrItemExists", err)
	}
	if err := c.CreateItem(ctx, Any, NewItem{ID: "new", Stock: 1}); err != nil {
		t.Errorf("CreateItem(new) = %v", err)
	}
	st, raw, err := c.ClusterStatus(ctx, 0)
	if err != nil || len(st.Shards) != 1 || st.Shards[0] != (ShardStatus{Leader: "n2", Term: 4, UnflushedOrders: 12}) || !strings.Contains(string(raw), `"node":"n0"`) {
		t.Errorf("ClusterStatus() = %+v, %s, %v", st, raw, err)
	}
	var se *StatusError
	if err := c.Ready(ctx, 0); !errors.As(err, &se) || se.Status != 503 {
		t.Errorf("Ready() = %v; want 503", err)
	}
}

func TestNextSkipsRefused(t *testing.T) {
	var hits atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer live.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: connections are refused

	now := time.Unix(1_700_000_000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	c := New(Config{Targets: []string{dead, live.URL}, Timeout: time.Second,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	defer c.Close()
	if got := []int{c.Next(), c.Next(), c.Next()}; got[0] != 0 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("Next() = %v; want round-robin 0 1 0", got)
	}
	if r := c.Do(context.Background(), 0, http.MethodGet, "/", nil, Auth{}); r.Outcome != OutcomeNetError {
		t.Fatalf("Do(dead) = %v %v; want net_error", r.Outcome, r.Err)
	}
	for range 4 {
		if r := c.Do(context.Background(), Any, http.MethodGet, "/", nil, Auth{}); r.Target != 1 {
			t.Fatalf("Do(Any) asked target %d within 500 ms of a refusal; want 1", r.Target)
		}
	}
	clock.Add(int64(refusedFor))
	if got := []int{c.Next(), c.Next()}; got[0] == got[1] {
		t.Errorf("Next() after the pause = %v; want both targets again", got)
	}
	if hits.Load() != 4 {
		t.Errorf("live target got %d requests; want 4", hits.Load())
	}
}
