package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(c *Config)
		wantErr string // "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"loopback", func(c *Config) { *c = LoopbackConfig("http://127.0.0.1:1") }, ""},
		{"open loop", func(c *Config) { c.Workers, c.Rate = 0, 500 }, ""},
		{"crowd", func(c *Config) { c.Scenario, c.Workers = ScenarioCrowd, 0 }, ""},
		{"many", func(c *Config) { c.Scenario, c.Items = ScenarioMany, 5 }, ""},
		{"browse", func(c *Config) { c.Scenario = ScenarioBrowse }, ""},
		{"unknown scenario", func(c *Config) { c.Scenario = "stampede" }, "scenario"},
		{"no targets", func(c *Config) { c.Targets = nil }, "targets"},
		{"bad target", func(c *Config) { c.Targets = []string{"127.0.0.1:8080"} }, "target"},
		{"both loops", func(c *Config) { c.Rate = 100 }, "exactly one"},
		{"no loop", func(c *Config) { c.Workers = 0 }, "exactly one"},
		{"crowd with workers", func(c *Config) { c.Scenario = ScenarioCrowd }, "crowd"},
		{"crowd window too long", func(c *Config) {
			c.Scenario, c.Workers, c.ArrivalWindow = ScenarioCrowd, 0, time.Hour
		}, "arrival window"},
		{"hot with many items", func(c *Config) { c.Items = 3 }, "exactly one item"},
		{"many with one item", func(c *Config) { c.Scenario = ScenarioMany }, "at least 2"},
		{"create without admin", func(c *Config) { c.Create = true }, "admin token"},
		{"unbounded requests", func(c *Config) { c.Requests = 0 }, "requests"},
		{"unbounded time", func(c *Config) { c.Duration = 0 }, "duration"},
		{"no timeout", func(c *Config) { c.RequestTimeout = 0 }, "request timeout"},
		{"no in-flight bound", func(c *Config) { c.Workers, c.Rate, c.MaxInFlight = 0, 10, 0 }, "in-flight"},
		{"replay over 1", func(c *Config) { c.ReplayFraction = 1.5 }, "replay"},
		{"backoff", func(c *Config) { c.Backoff.Max = time.Millisecond }, "backoff"},
		{"browse without views", func(c *Config) { c.Scenario, c.PageViews = ScenarioBrowse, 0 }, "page views"},
		{"prefix with slash", func(c *Config) { c.ItemPrefix = "a/b" }, "item prefix"},
		{"item IDs too long", func(c *Config) { c.ItemPrefix = strings.Repeat("x", 64) }, "item prefix"},
		{"user prefix with space", func(c *Config) { c.UserPrefix = "a b" }, "user prefix"},
		{"user prefix too long", func(c *Config) { c.UserPrefix = strings.Repeat("u", 40) }, "user prefix"},
		{"user prefix", func(c *Config) { c.UserPrefix = "bench:1_a.b-" }, ""},
		{"jwt without ttl", func(c *Config) { c.AuthSecret, c.TokenTTL = "k", 0 }, "token TTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestItemIDs(t *testing.T) {
	c := DefaultConfig()
	c.Items, c.ItemPrefix = 3, "sku-"
	if got := strings.Join(c.ItemIDs(), ","); got != "sku-1,sku-2,sku-3" {
		t.Errorf("ItemIDs() = %s; want sku-1,sku-2,sku-3", got)
	}
}
