package sale

// Item is a sale item: its stock and the rules of its sale. Times are unix
// nanoseconds; a zero StartsAt or EndsAt means no bound.
type Item struct {
	ID           string
	Name         string
	Stock        int64 // total units ever offered (initial stock plus restocks)
	Remaining    int64
	PerUserLimit int32
	StartsAt     int64
	EndsAt       int64
	Paused       bool
	CreatedAt    int64
}

// Sold returns the number of units sold and not returned.
func (it *Item) Sold() int64 { return it.Stock - it.Remaining }

// Status is an item's sale status as the API reports it.
type Status string

// Item statuses.
const (
	StatusUpcoming Status = "upcoming"
	StatusOnSale   Status = "on_sale"
	StatusSoldOut  Status = "sold_out"
	StatusEnded    Status = "ended"
	StatusPaused   Status = "paused"
)

// Status returns the item's sale status at time now (unix nanoseconds).
func (it *Item) Status(now int64) Status {
	switch {
	case it.EndsAt != 0 && now >= it.EndsAt:
		return StatusEnded
	case it.Paused:
		return StatusPaused
	case it.Remaining <= 0:
		return StatusSoldOut
	case now < it.StartsAt:
		return StatusUpcoming
	}
	return StatusOnSale
}

// OnSaleAt reports whether the item accepts purchases at time now: not
// paused, and inside its sale window.
func (it *Item) OnSaleAt(now int64) bool {
	return !it.Paused && now >= it.StartsAt && (it.EndsAt == 0 || now < it.EndsAt)
}
