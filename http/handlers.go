package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// itemJSON is the API form of an item.
type itemJSON struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Stock        int64      `json:"stock"`
	Remaining    int64      `json:"remaining"`
	Sold         int64      `json:"sold"`
	PerUserLimit int32      `json:"per_user_limit"`
	StartsAt     *time.Time `json:"starts_at,omitempty"`
	EndsAt       *time.Time `json:"ends_at,omitempty"`
	Status       string     `json:"status"`
}

func nanosToTime(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := time.Unix(0, n).UTC()
	return &t
}

func (s *Server) itemJSON(it sale.Item) itemJSON {
	return itemJSON{
		ID: it.ID, Name: it.Name, Stock: it.Stock, Remaining: it.Remaining, Sold: it.Sold(),
		PerUserLimit: it.PerUserLimit, StartsAt: nanosToTime(it.StartsAt), EndsAt: nanosToTime(it.EndsAt),
		Status: string(it.Status(s.now().UnixNano())),
	}
}

// orderJSON is the API form of an order.
type orderJSON struct {
	OrderID   string     `json:"order_id"`
	ItemID    string     `json:"item_id"`
	UserID    string     `json:"user_id"`
	Quantity  int32      `json:"quantity"`
	Status    string     `json:"status"`
	RequestID string     `json:"request_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	PayBy     *time.Time `json:"pay_by,omitempty"`
	Persisted *bool      `json:"persisted,omitempty"`
}

func toOrderJSON(o orders.Order) orderJSON {
	j := orderJSON{
		OrderID: orders.FormatID(o.ID), ItemID: o.ItemID, UserID: o.UserID, Quantity: o.Quantity,
		Status: string(o.Status), RequestID: o.RequestID, CreatedAt: o.CreatedAt,
	}
	if !o.PayBy.IsZero() {
		j.PayBy = &o.PayBy
	}
	return j
}

// decode reads a JSON body strictly: the content type must be JSON, unknown
// fields and trailing data are errors. An empty body leaves v unchanged
// when allowEmpty.
func decode(c echo.Context, v any, allowEmpty bool) error {
	r := c.Request()
	if r.ContentLength == 0 && allowEmpty {
		return nil
	}
	if err := checkJSON(r); err != nil {
		return err
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	data, err := readAll(r.Body, (*buf)[:0])
	*buf = data[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return invalid("reading the body: %v", err)
	}
	err = decodeStrict(data, v)
	if errors.Is(err, io.EOF) {
		if allowEmpty {
			return nil
		}
		return invalid("request body is empty")
	}
	return err
}

// checkJSON requires a JSON content type.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get(echo.HeaderContentType)
	if ct == echo.MIMEApplicationJSON {
		return nil
	}
	if ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == echo.MIMEApplicationJSON {
			return nil
		}
	}
	return errContentType
}

// decodeStrict decodes one JSON object into the struct v points to: a key
// that is not exactly one of v's JSON field names (encoding/json alone
// would match "QUANTITY" to "quantity"), a key given twice (it would keep
// the last), unknown fields and trailing data are errors; an empty input
// is io.EOF.
func decodeStrict(data []byte, v any) error {
	if err := checkKeys(data, jsonKeys(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return errTooLarge
		case errors.Is(err, io.EOF):
			return io.EOF
		}
		return invalid("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("request body has data after the JSON object")
	}
	return nil
}

func itemParam(c echo.Context) (string, error) {
	id := c.Param("id")
	if !sale.ValidID(id) {
		return "", invalid("item id must be " + sale.IDRule)
	}
	return id, nil
}

func (s *Server) getItem(c echo.Context) error {
	id, err := itemParam(c)
	if err != nil {
		return err
	}
	it, err := s.engine.Item(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.itemJSON(it))
}

type createItemBody struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Stock        *int64     `json:"stock"`
	PerUserLimit *int32     `json:"per_user_limit"`
	StartsAt     *time.Time `json:"starts_at"`
	EndsAt       *time.Time `json:"ends_at"`
}

func (b *createItemBody) validate() (sale.Item, error) {
	c := sale.Item{ID: b.ID, Name: b.Name, PerUserLimit: 1}
	switch {
	case !sale.ValidID(b.ID):
		return c, invalid("id must be " + sale.IDRule)
	case len(b.Name) > sale.NameLenMax:
		return c, invalid("name must be at most %d bytes", sale.NameLenMax)
	case b.Stock == nil:
		return c, invalid("stock is required")
	case *b.Stock < 0 || *b.Stock > sale.StockMax:
		return c, invalid("stock must be 0..%d", sale.StockMax)
	case b.PerUserLimit != nil && (*b.PerUserLimit < 1 || *b.PerUserLimit > sale.PerUserLimitMax):
		return c, invalid("per_user_limit must be 1..%d", sale.PerUserLimitMax)
	case b.StartsAt != nil && !sale.ValidSaleTime(*b.StartsAt), b.EndsAt != nil && !sale.ValidSaleTime(*b.EndsAt):
		return c, invalid("starts_at and ends_at must be between %s and %s", sale.SaleTimeMin.Format(time.RFC3339), sale.SaleTimeMax.Format(time.RFC3339))
	case b.StartsAt != nil && b.EndsAt != nil && !b.EndsAt.After(*b.StartsAt):
		return c, invalid("ends_at must be after starts_at")
	}
	c.Stock = *b.Stock
	if b.PerUserLimit != nil {
		c.PerUserLimit = *b.PerUserLimit
	}
	if b.StartsAt != nil {
		c.StartsAt = b.StartsAt.UnixNano()
	}
	if b.EndsAt != nil {
		c.EndsAt = b.EndsAt.UnixNano()
	}
	return c, nil
}

func (s *Server) createItem(c echo.Context) error {
	var b createItemBody
	if err := decode(c, &b, false); err != nil {
		return err
	}
	cmd, err := b.validate()
	if err != nil {
		return err
	}
	it, err := s.engine.CreateItem(c.Request().Context(), cmd)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, s.itemJSON(it))
}

type restockBody struct {
	Delta *int64 `json:"delta"`
}

func (s *Server) restock(c echo.Context) error {
	id, err := itemParam(c)
	if err != nil {
		return err
	}
	var b restockBody
	if err := decode(c, &b, false); err != nil {
		return err
	}
	if b.Delta == nil || *b.Delta == 0 || *b.Delta > sale.StockMax || *b.Delta < -sale.StockMax {
		return invalid("delta must be a non-zero integer within ±%d", sale.StockMax)
	}
	it, err := s.engine.Restock(c.Request().Context(), id, *b.Delta)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.itemJSON(it))
}

func (s *Server) pause(c echo.Context) error  { return s.setPaused(c, true) }
func (s *Server) resume(c echo.Context) error { return s.setPaused(c, false) }

func (s *Server) setPaused(c echo.Context, paused bool) error {
	id, err := itemParam(c)
	if err != nil {
		return err
	}
	it, err := s.engine.SetPaused(c.Request().Context(), id, paused)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.itemJSON(it))
}

// endSale closes an item's sale window now (admin): the item stays
// readable, its orders stand, and purchases get not_on_sale.
func (s *Server) endSale(c echo.Context) error {
	id, err := itemParam(c)
	if err != nil {
		return err
	}
	it, err := s.engine.EndSale(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.itemJSON(it))
}

// idempotencyKeyHeader carries a purchase's request ID outside its body.
const idempotencyKeyHeader = "Idempotency-Key"

type purchaseBody struct {
	Quantity  *int32 `json:"quantity"`
	RequestID string `json:"request_id"`
}

// parsePurchase validates a purchase request. It is separate from the
// handler so that it can be fuzzed.
func parsePurchase(b *purchaseBody) (qty int32, err error) {
	qty = 1
	if b.Quantity != nil {
		qty = *b.Quantity
	}
	switch {
	case qty < 1 || qty > sale.PerUserLimitMax:
		return 0, invalid("quantity must be 1..%d", sale.PerUserLimitMax)
	case b.RequestID != "" && !sale.ValidID(b.RequestID):
		return 0, invalid("request_id must be " + sale.IDRule)
	}
	return qty, nil
}

func (s *Server) purchase(c echo.Context) error {
	id, err := itemParam(c)
	if err != nil {
		return err
	}
	b, err := decodePurchase(c)
	if err != nil {
		return err
	}
	// The request ID may come as an Idempotency-Key header too, which a
	// proxy can see without reading the body: nginx resends only keyed
	// purchases to another node (deploy/swarm/nginx.conf).
	if key := c.Request().Header.Get(idempotencyKeyHeader); key != "" {
		switch {
		case b.RequestID == "":
			b.RequestID = key
		case b.RequestID != key:
			return invalid("the Idempotency-Key header and request_id differ")
		}
	}
	qty, err := parsePurchase(&b)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	o, dup, err := s.engine.Purchase(ctx, sale.Request{
		ItemID: id, UserID: c.Get(ctxUser).(string), RequestID: b.RequestID, Quantity: qty,
	})
	if err != nil {
		ae, _ := classify(err)
		s.m.Purchases.WithLabelValues(ae.code).Inc()
		c.Set(ctxOutcome, ae.code)
		return err
	}
	status, outcome := http.StatusCreated, "confirmed"
	if dup {
		status, outcome = http.StatusOK, "duplicate"
	}
	s.m.Purchases.WithLabelValues(outcome).Inc()
	c.Set(ctxOutcome, outcome)
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	if *buf, err = appendOrderJSON((*buf)[:0], &o); err != nil {
		return err
	}
	return c.Blob(status, echo.MIMEApplicationJSON, *buf)
}

// bufPool holds buffers for request bodies and purchase responses.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// decodePurchase reads a purchase body: the common shapes through the
// allocation-free fast path, anything else through the strict general
// decoder. An empty body means all defaults.
func decodePurchase(c echo.Context) (purchaseBody, error) {
	var b purchaseBody
	r := c.Request()
	if r.ContentLength == 0 {
		return b, nil
	}
	if err := checkJSON(r); err != nil {
		return b, err
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	data, err := readAll(r.Body, (*buf)[:0])
	*buf = data[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return b, errTooLarge
		}
		return b, invalid("reading the body: %v", err)
	}
	return decodePurchaseBody(data)
}

// decodePurchaseBody decodes a purchase body: the fast path, else the
// strict decoder, which holds the same rules (each key exactly "quantity"
// or "request_id", at most once). Blank means all defaults.
func decodePurchaseBody(data []byte) (purchaseBody, error) {
	if fast, ok := parsePurchaseFast(data); ok {
		return fast, nil
	}
	var b purchaseBody
	if len(bytes.TrimSpace(data)) == 0 {
		return b, nil
	}
	return b, decodeStrict(data, &b)
}

// readAll appends r to buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// appendOrderJSON appends the API form of a confirmed order, exactly as
// encoding/json renders orderJSON (with its trailing newline), without
// reflection when the IDs are in sale's alphabet, which needs no escaping
// (the API checks it on the way in). Anything else goes through
// encoding/json.
func appendOrderJSON(b []byte, o *orders.Order) ([]byte, error) {
	if !sale.ValidID(o.ItemID) || !sale.ValidID(o.UserID) || (o.RequestID != "" && !sale.ValidID(o.RequestID)) || !sale.ValidID(string(o.Status)) {
		j, err := json.Marshal(toOrderJSON(*o))
		if err != nil {
			return b, fmt.Errorf("httpapi: encode order: %w", err)
		}
		return append(append(b, j...), '\n'), nil
	}
	b = append(b, `{"order_id":"`...)
	b = strconv.AppendUint(b, o.ID, 10)
	b = append(b, `","item_id":"`...)
	b = append(b, o.ItemID...)
	b = append(b, `","user_id":"`...)
	b = append(b, o.UserID...)
	b = append(b, `","quantity":`...)
	b = strconv.AppendInt(b, int64(o.Quantity), 10)
	b = append(b, `,"status":"`...)
	b = append(b, o.Status...)
	b = append(b, '"')
	if o.RequestID != "" {
		b = append(b, `,"request_id":"`...)
		b = append(b, o.RequestID...)
		b = append(b, '"')
	}
	b = append(b, `,"created_at":"`...)
	b = o.CreatedAt.AppendFormat(b, time.RFC3339Nano)
	if !o.PayBy.IsZero() {
		b = append(b, `","pay_by":"`...)
		b = o.PayBy.AppendFormat(b, time.RFC3339Nano)
	}
	return append(b, "\"}\n"...), nil
}

func (s *Server) getOrder(c echo.Context) error {
	id, err := orders.ParseID(c.Param("id"))
	if err != nil {
		return invalid("order id must be a positive decimal integer")
	}
	o, persisted, err := s.engine.Order(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if admin, _ := c.Get(ctxAdmin).(bool); !admin && c.Get(ctxUser) != o.UserID {
		// Not the buyer: answer as if it did not exist.
		return sale.ErrOrderNotFound
	}
	j := toOrderJSON(o)
	j.Persisted = &persisted
	return c.JSON(http.StatusOK, j)
}

// ordersListMax caps GET /v1/users/me/orders.
const ordersListMax = 100

func (s *Server) myOrders(c echo.Context) error {
	limit := 20
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ordersListMax {
			return invalid("limit must be 1..%d", ordersListMax)
		}
		limit = n
	}
	list, err := s.engine.UserOrders(c.Request().Context(), c.Get(ctxUser).(string), limit)
	if err != nil {
		return err
	}
	out := make([]orderJSON, len(list))
	for i, o := range list {
		out[i] = toOrderJSON(o)
	}
	return c.JSON(http.StatusOK, map[string]any{"orders": out})
}

// cancelOrder cancels an order (admin): its units go back on sale and to
// the buyer's allowance. Cancelling a cancelled order answers it again.
func (s *Server) cancelOrder(c echo.Context) error {
	id, err := orders.ParseID(c.Param("id"))
	if err != nil {
		return invalid("order id must be a positive decimal integer")
	}
	o, err := s.engine.CancelOrder(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toOrderJSON(o))
}

func (s *Server) payOrder(c echo.Context) error {
	id, err := orders.ParseID(c.Param("id"))
	if err != nil {
		return invalid("order id must be a positive decimal integer")
	}
	o, err := s.engine.Pay(c.Request().Context(), id, c.Get(ctxUser).(string))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toOrderJSON(o))
}
