package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/sale"
)

// ClusterView is the cluster as this node sees it, for the console: who
// the members are, every shard's Raft state, and the circuit breakers to
// other nodes. Node.ClusterView returns it without asking other nodes.
type ClusterView struct {
	Node     string            `json:"node"`
	Region   string            `json:"region,omitempty"`
	Ready    bool              `json:"ready"`
	Members  []MemberView      `json:"members"`
	Shards   []ShardView       `json:"shards"`
	Breakers map[string]string `json:"circuit_breakers"` // remote actor address -> closed, open, half-open
}

// MemberView is one member of the cluster.
type MemberView struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	Region   string    `json:"region,omitempty"`
	State    string    `json:"state"` // alive, dead, left
	Since    time.Time `json:"since"` // when State last changed
	HTTPAddr string    `json:"http_addr"`
	Leads    []int     `json:"leads"` // shards it says it leads
}

// ShardView is one shard group, as this node's replica (or, for the
// leader's name, this node's placement) sees it.
type ShardView struct {
	ID           int      `json:"id"`
	State        string   `json:"state"` // this node's Raft state in the group
	Leader       string   `json:"leader"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"non_voters"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	LastContact  string   `json:"last_contact"` // with the leader, as hashicorp/raft reports it
	Items        int      `json:"items"`
	Unflushed    int      `json:"unflushed_orders"` // confirmed orders not yet in the order store
	FlushedSeq   uint64   `json:"flushed_seq"`      // the order store watermark (outbox sequence)
}

// consoleFiles is the admin console: plain HTML, CSS and JavaScript, no
// build step, nothing loaded from elsewhere.
//
//go:embed console
var consoleFiles embed.FS

// consoleCSP lets the console load only its own script and stylesheet and
// talk only to this node; no inline script, no framing.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routeConsole registers the console's page and its admin data routes.
// The page itself is public (it holds no data); everything it shows and
// does goes through admin routes.
func (s *Server) routeConsole(e *echo.Echo, v1 *echo.Group) {
	sub, _ := fs.Sub(consoleFiles, "console")
	asset := func(name, ctype string) echo.HandlerFunc {
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			panic("httpapi: console asset " + name + " missing from the binary")
		}
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", consoleCSP)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			return c.Blob(http.StatusOK, ctype, b)
		}
	}
	page := asset("index.html", "text/html; charset=utf-8")
	e.GET("/console", page)
	e.GET("/console/", page)
	e.GET("/console/app.js", asset("app.js", "text/javascript; charset=utf-8"))
	e.GET("/console/app.css", asset("app.css", "text/css; charset=utf-8"))

	v1.GET("/items", s.listItems, s.requireAdmin)
	v1.GET("/admin/dashboard", s.dashboard, s.requireAdmin)
}

// Bounds of the item lists.
const (
	itemsPageDefault = 50
	itemsPageMax     = 200
)

// pageQuery reads ?after=ID&limit=n.
func pageQuery(c echo.Context) (after string, limit int, err error) {
	after, limit = c.QueryParam("after"), itemsPageDefault
	if after != "" && !sale.ValidID(after) {
		return "", 0, invalid("after must be an item id")
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > itemsPageMax {
			return "", 0, invalid("limit must be 1..%d", itemsPageMax)
		}
		limit = n
	}
	return after, limit, nil
}

// itemsPage is the body of GET /v1/items.
type itemsPage struct {
	Items []itemJSON `json:"items"`
	// Next is the after= value of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
	// MissingShards are shards this node holds no replica of: their
	// items are not listed here (ask a node that replicates them).
	MissingShards []int `json:"missing_shards"`
}

func (s *Server) listItems(c echo.Context) error {
	after, limit, err := pageQuery(c)
	if err != nil {
		return err
	}
	list, more, missing, err := s.engine.ListItems(c.Request().Context(), after, limit)
	if err != nil {
		return err
	}
	p := itemsPage{Items: make([]itemJSON, len(list)), MissingShards: missing}
	for i, it := range list {
		p.Items[i] = s.itemJSON(it)
	}
	if more && len(list) > 0 {
		p.Next = list[len(list)-1].ID
	}
	if p.MissingShards == nil {
		p.MissingShards = []int{}
	}
	return c.JSON(http.StatusOK, &p)
}

func (s *Server) dashboard(c echo.Context) error {
	after, limit, err := pageQuery(c)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	body, err := s.console.page(after, limit)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}
