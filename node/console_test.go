package node_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flashstock/flashstock/config"
)

// chromiumPath returns Debian's chromium, or skips the test without one
// (CI sets FLASHSTOCK_REQUIRE_CHROMIUM=1 and installs it: there it fails).
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("FLASHSTOCK_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed but FLASHSTOCK_REQUIRE_CHROMIUM=1 (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// browser is one headless Chromium tab and what its console printed.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
	// expect is the HTTP status of a deliberate refusal (a wrong token, a
	// duplicate item): Chromium logs every failed fetch as a console
	// error, and the page shows that answer on purpose.
	expect int
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	b := &browser{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx) // starts the browser and subscribes
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			b.mu.Lock()
			if !(b.expect != 0 && m.Source == "network" && strings.Contains(m.Text, fmt.Sprintf("status of %d", b.expect))) {
				b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	return b
}

func (b *browser) expectStatus(code int) {
	b.mu.Lock()
	b.expect = code
	b.mu.Unlock()
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	switch v := out.(type) {
	case *bool:
		r, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		*v = r
		return err
	case *string:
		r, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		*v = r
		return err
	}
	return fmt.Errorf("eval: unsupported %T", out)
}

// waitJS waits until the JavaScript expression is true, and returns how
// long that took.
func (b *browser) waitJS(timeout time.Duration, what, expr string) time.Duration {
	b.t.Helper()
	start := time.Now()
	var ok bool
	var err error
	for time.Since(start) < timeout {
		if err = b.eval(expr, &ok); err == nil && ok {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var page string
	_ = b.eval(`document.body.innerText.slice(0, 3000)`, &page)
	b.t.Fatalf("%s: not within %v (last error %v); the page shows:\n%s", what, timeout, err, page)
	return 0
}

func (b *browser) text(expr string) string {
	b.t.Helper()
	var s string
	if err := b.eval(expr, &s); err != nil {
		b.t.Fatalf("eval %s: %v", expr, err)
	}
	return s
}

// screenshot saves a full-page PNG of the given width and checks it.
func (b *browser) screenshot(dir, name string, width int64) string {
	b.t.Helper()
	b.do("viewport "+name, chromedp.EmulateViewport(width, 900))
	time.Sleep(300 * time.Millisecond) // let the layout settle at the new width
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || int64(cfg.Width) != width {
		b.t.Fatalf("screenshot %s: %v, width %d; want a PNG %d wide", name, err, cfg.Width, width)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, img, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// cardJS is the JavaScript expression of an item card's element.
func cardJS(id string) string { return `document.querySelector('article.item[data-id="` + id + `"]')` }

// TestConsole drives the admin console in a real headless Chromium against
// a real three-node cluster: sign in (a wrong token is refused), watch the
// members and shard leaders, create an item from the page, see it sell out
// (bought through the API) within 2 s without a reload, restock, pause and
// resume it from the page, then kill a node and see the banner and the new
// leaders. It saves screenshots at desktop and phone widths in
// $FLASHSTOCK_CONSOLE_SHOTS (docs/console for the README), else in a
// temporary directory.
func TestConsole(t *testing.T) {
	chromiumPath(t)
	shots := os.Getenv("FLASHSTOCK_CONSOLE_SHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	tc := newTestClusterWith(t, 3, nil, func(c *config.Config) { c.Region = "lab-" + c.Name })
	b := newBrowser(t)
	base := "http://" + tc.nodes[0].HTTPAddr()

	b.do("open the console", chromedp.Navigate(base+"/console"), chromedp.WaitVisible(chromedp.ID("token")))

	// A wrong token is refused and not kept.
	b.expectStatus(401)
	b.do("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-admin-token-0123456789\r"))
	b.waitJS(5*time.Second, "the wrong token refused",
		`document.getElementById('signin-error').textContent.includes('401') && document.getElementById('app').hidden`)
	if got := b.text(`String(sessionStorage.getItem('flashstock.adminToken')) + ' ' + document.getElementById('token').value`); got != "null " {
		t.Errorf("session storage and the field after a refused token = %q; want nothing", got)
	}
	b.expectStatus(0)

	// The right one, typed and submitted from the keyboard.
	b.do("type the admin token", chromedp.SendKeys(chromedp.ID("token"), adminToken+"\r"))
	b.waitJS(5*time.Second, "signed in", `!document.getElementById('app').hidden`)
	if got := b.text(`sessionStorage.getItem('flashstock.adminToken')`); got != adminToken {
		t.Errorf("session storage holds %q; want the admin token", got)
	}
	if u := b.text(`location.href`); strings.Contains(u, adminToken) {
		t.Errorf("the token is in the address: %s", u)
	}
	if c := b.text(`document.cookie`); c != "" {
		t.Errorf("document.cookie = %q; want none", c)
	}

	// Three members, alive, and a leader for every shard.
	b.waitJS(10*time.Second, "three live members",
		`[...document.querySelectorAll('#members-body tr')].filter(r => r.cells[3].textContent === 'alive').length === 3`)
	b.waitJS(10*time.Second, "a leader for every shard", fmt.Sprintf(
		`(() => { const rows = [...document.querySelectorAll('#shards-body tr')];
		  return rows.length === %d && rows.every(r => /^n[0-9]$/.test(r.querySelector('.leader').textContent)); })()`, tc.cfgs[0].Shards))

	// Create an item from the page: the confirmation says what will change.
	const item = "flash-phone"
	b.do("open the create form", chromedp.Click(chromedp.CSS("#create > summary")))
	b.do("fill the create form",
		chromedp.SetValue(chromedp.ID("c-id"), item), chromedp.SetValue(chromedp.ID("c-name"), "Flash phone"),
		chromedp.SetValue(chromedp.ID("c-stock"), "20"), chromedp.SetValue(chromedp.ID("c-limit"), "1"),
		chromedp.Click(chromedp.CSS("#create-form button[type=submit]")))
	b.waitJS(5*time.Second, "the create confirmation", `document.getElementById('confirm').open`)
	if got := b.text(`document.getElementById('confirm-changes').textContent`); !strings.Contains(got, "Stock: 20 units") || !strings.Contains(got, "Limit: 1 per shopper") {
		t.Errorf("create confirmation shows %q; want the stock and the limit", got)
	}
	if got := b.text(`document.activeElement.id`); got != "confirm-cancel" {
		t.Errorf("focus in the confirmation is on %q; want the Cancel button (keyboard users)", got)
	}
	b.do("confirm the creation", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS(10*time.Second, "the API's 201", `document.getElementById('result-line').textContent.includes('→ 201')`)
	b.waitJS(5*time.Second, "the item's card", cardJS(item)+` !== null && `+cardJS(item)+`.dataset.status === 'on_sale'`)
	// The same route refuses a duplicate, and the page shows the API's error.
	b.expectStatus(409)
	b.do("create it again", chromedp.Click(chromedp.CSS("#create-form button[type=submit]")))
	b.waitJS(5*time.Second, "the second confirmation", `document.getElementById('confirm').open`)
	b.do("confirm again", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS(10*time.Second, "the API's 409", `document.getElementById('result-line').textContent.includes('→ 409') &&
		document.getElementById('result-line').textContent.includes('item_exists')`)

	b.expectStatus(0)

	// Buy it out through the API, on another node; the page follows
	// without a reload.
	for i := range 20 { // over about 2 s, so that the sparkline has a shape
		tc.mustBuy(1, item, fmt.Sprintf("buyer-%d", i))
		time.Sleep(time.Duration(i%5) * 40 * time.Millisecond)
	}
	took := b.waitJS(10*time.Second, "sold out on the page",
		cardJS(item)+`.querySelector('.status strong').textContent === 'Sold out'`)
	t.Logf("sold out on the page %v after the last purchase", took.Round(time.Millisecond))
	if got := b.text(cardJS(item) + `.textContent`); !strings.Contains(got, "Sold 20 of 20") {
		t.Errorf("sold-out card reads %q; want Sold 20 of 20", got)
	}
	desktop := b.screenshot(shots, "desktop.png", 1280)
	phone := b.screenshot(shots, "phone.png", 390)
	b.do("back to desktop width", chromedp.EmulateViewport(1280, 900))

	// Restock, pause and resume from the page.
	b.do("restock by 5", chromedp.SetValue(chromedp.CSS(`article.item[data-id="`+item+`"] input`), "5"),
		chromedp.Click(chromedp.CSS(`article.item[data-id="`+item+`"] .actions button:nth-of-type(1)`)))
	b.waitJS(5*time.Second, "the restock confirmation", `document.getElementById('confirm').open &&
		document.getElementById('confirm-changes').textContent.includes('Remaining: 0 → 5')`)
	b.do("confirm the restock", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS(10*time.Second, "back on sale", cardJS(item)+`.dataset.status === 'on_sale'`)

	b.do("pause", chromedp.Click(chromedp.CSS(`article.item[data-id="`+item+`"] .actions button:nth-of-type(2)`)))
	b.waitJS(5*time.Second, "the pause confirmation", `document.getElementById('confirm').open &&
		document.getElementById('confirm-changes').textContent.includes('On sale → Paused')`)
	b.do("confirm the pause", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS(10*time.Second, "paused on the page", cardJS(item)+`.querySelector('.status strong').textContent === 'Paused'`)
	// Another node's replica learns of it within a replication round.
	if !eventually(10*time.Second, func() bool { return tc.mustDo(2, "GET", "/v1/items/"+item, "", nil, 200)["status"] == "paused" }) {
		got := tc.mustDo(2, "GET", "/v1/items/"+item, "", nil, 200)["status"]
		t.Errorf("after Pause on the page, the API says status %v; want paused", got)
	}
	r, err := tc.do(1, "POST", "/v1/items/"+item+"/purchase", "buyer-paused", map[string]any{})
	if err != nil || r.status != 403 {
		t.Errorf("purchase of a paused item = %d %v, %v; want 403 not_on_sale", r.status, r.body, err)
	}
	b.do("resume", chromedp.Click(chromedp.CSS(`article.item[data-id="`+item+`"] .actions button:nth-of-type(2)`)))
	b.waitJS(5*time.Second, "the resume confirmation", `document.getElementById('confirm').open &&
		document.getElementById('confirm-what').textContent.includes('Resume')`)
	b.do("confirm the resume", chromedp.Click(chromedp.ID("confirm-ok")))
	b.waitJS(10*time.Second, "on sale again", cardJS(item)+`.querySelector('.status strong').textContent === 'On sale'`)
	// Another node's replica learns of it within a replication round.
	if !eventually(10*time.Second, func() bool { return tc.mustDo(2, "GET", "/v1/items/"+item, "", nil, 200)["status"] == "on_sale" }) {
		got := tc.mustDo(2, "GET", "/v1/items/"+item, "", nil, 200)["status"]
		t.Errorf("after Resume on the page, the API says status %v; want on_sale", got)
	}

	// The admin list pages through every item of every shard, in ID order.
	want := []string{item}
	for i := range 5 {
		id := fmt.Sprintf("list-%d", i)
		tc.mustDo(1, "POST", "/v1/items", "admin", map[string]any{"id": id, "stock": 3}, 201)
		want = append(want, id)
	}
	// Node 0 lists from its replicas, which learn of the creations on n1
	// within a replication round.
	list := func() []string {
		var listed []string
		for after, pages := "", 0; ; pages++ {
			if pages > 6 {
				t.Fatalf("GET /v1/items never reached its last page: %v", listed)
			}
			p := tc.mustDo(0, "GET", "/v1/items?limit=2&after="+after, "admin", nil, 200)
			if n := len(p["items"].([]any)); n > 2 {
				t.Fatalf("GET /v1/items?limit=2 returned %d items", n)
			}
			for _, it := range p["items"].([]any) {
				listed = append(listed, it.(map[string]any)["id"].(string))
			}
			next, _ := p["next"].(string)
			if next == "" {
				return listed
			}
			after = next
		}
	}
	var listed []string
	if !eventually(5*time.Second, func() bool { listed = list(); return strings.Join(listed, ",") == strings.Join(want, ",") }) {
		t.Errorf("GET /v1/items by pages of 2 = %v; want %v", listed, want)
	}

	// Kill a node that leads a shard: the banner says so, every shard gets
	// a leader that is alive, and the timeline shows the change. With four
	// shards over three nodes the balancer may leave n2 none: give it one.
	n2 := tc.nodes[2].Store()
	waitFor(t, 15*time.Second, "n2 leads a shard", func() bool {
		for i := 0; i < n2.Shards(); i++ {
			if n2.Shard(i).Ready() {
				return true
			}
		}
		for _, nd := range tc.nodes[:2] {
			if sh := nd.Store().Shard(0); sh.IsLeader() {
				_ = sh.TransferLeadership(tc.cfgs[2].Name, n2.Addr())
			}
		}
		return false
	})
	// The console samples leaders twice a second: the page must have seen
	// n2 lead before it goes, or no change from n2 is on its timeline.
	b.waitJS(10*time.Second, "n2 leading a shard on the page", `[...document.querySelectorAll('#shards-body tr')].some(r =>
		r.querySelector('.leader').textContent === 'n2')`)
	tc.nodes[2].Kill()
	b.waitJS(30*time.Second, "the node-down banner", `!document.getElementById('banner').hidden &&
		[...document.querySelectorAll('#alerts li[data-kind="node_down"]')].some(li => li.textContent.includes('n2'))`)
	b.waitJS(20*time.Second, "new leaders", `[...document.querySelectorAll('#shards-body tr')].every(r =>
		/^n[01]$/.test(r.querySelector('.leader').textContent))`)
	b.waitJS(5*time.Second, "the leader timeline", `[...document.querySelectorAll('#timeline li')].some(li => li.textContent.includes('n2 →'))`)
	if got := b.text(`[...document.querySelectorAll('#members-body tr')].map(r => r.cells[0].textContent + '=' + r.cells[3].textContent).join(' ')`); !strings.Contains(got, "n2=DEAD") {
		t.Errorf("members table reads %q; want n2=DEAD (a label, not a colour)", got)
	}
	down := b.screenshot(shots, "node-down.png", 1280)
	t.Logf("screenshots: %s %s %s", desktop, phone, down)

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Errorf("the browser console shows errors:\n%s", strings.Join(b.errors, "\n"))
	}
}
