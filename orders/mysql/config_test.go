package mysql

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.DSNs = []string{"root@tcp(127.0.0.1:3306)/flashstock_0", "u:pw@tcp(db1:3306)/flashstock_1"}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"default with DSNs", func(*Config) {}, true},
		{"no DSNs", func(c *Config) { c.DSNs = nil }, false},
		{"unparsable DSN", func(c *Config) { c.DSNs[1] = "u:pw@tcp(db1:3306" }, false},
		{"DSN without database", func(c *Config) { c.DSNs[0] = "root@tcp(127.0.0.1:3306)/" }, false},
		{"zero tables", func(c *Config) { c.Tables = 0 }, false},
		{"too many tables", func(c *Config) { c.Tables = TablesMax + 1 }, false},
		{"one table", func(c *Config) { c.Tables = 1 }, true},
		{"zero max open conns", func(c *Config) { c.MaxOpenConns = 0 }, false},
		{"idle above open", func(c *Config) { c.MaxIdleConns = c.MaxOpenConns + 1 }, false},
		{"negative lifetime", func(c *Config) { c.ConnMaxLifetime = -time.Second }, false},
		{"zero connect timeout", func(c *Config) { c.ConnectTimeout = 0 }, false},
		{"zero read timeout", func(c *Config) { c.ReadTimeout = 0 }, false},
		{"zero write timeout", func(c *Config) { c.WriteTimeout = 0 }, false},
		{"sub-second lock wait", func(c *Config) { c.LockWaitTimeout = 500 * time.Millisecond }, false},
		{"sub-second migrate lock", func(c *Config) { c.MigrateLockTimeout = 0 }, false},
		{"zero chunk", func(c *Config) { c.ChunkRows = 0 }, false},
		{"huge chunk", func(c *Config) { c.ChunkRows = ChunkRowsMax + 1 }, false},
		{"zero attempts", func(c *Config) { c.WriteAttempts = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate() = %v; want nil", err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("Validate() = %v; want ErrInvalidConfig", err)
				}
				if strings.Contains(err.Error(), ":pw@") {
					t.Errorf("Validate() = %q; leaks the password", err)
				}
			}
		})
	}
}

func TestDriverConfigForcesSettings(t *testing.T) {
	c := DefaultConfig()
	c.LockWaitTimeout = 1500 * time.Millisecond
	dcfg, err := c.driverConfig("u:secret@tcp(db0:3306)/fs?parseTime=false&interpolateParams=false&sql_mode=%27STRICT_ALL_TABLES%27")
	if err != nil {
		t.Fatalf("driverConfig: %v", err)
	}
	if !dcfg.ParseTime || !dcfg.InterpolateParams || dcfg.Loc != time.UTC {
		t.Errorf("ParseTime, InterpolateParams, Loc = %v, %v, %v; want true, true, UTC",
			dcfg.ParseTime, dcfg.InterpolateParams, dcfg.Loc)
	}
	if dcfg.Timeout != c.ConnectTimeout || dcfg.ReadTimeout != c.ReadTimeout || dcfg.WriteTimeout != c.WriteTimeout {
		t.Errorf("timeouts = %v, %v, %v; want %v, %v, %v", dcfg.Timeout, dcfg.ReadTimeout, dcfg.WriteTimeout,
			c.ConnectTimeout, c.ReadTimeout, c.WriteTimeout)
	}
	wantParams := map[string]string{
		"sql_mode":                 "'STRICT_ALL_TABLES'",
		"time_zone":                "'+00:00'",
		"innodb_lock_wait_timeout": "2",
	}
	for k, want := range wantParams {
		if got := dcfg.Params[k]; got != want {
			t.Errorf("Params[%q] = %q; want %q", k, got, want)
		}
	}
	if got, want := redact(dcfg), "u:***@tcp(db0:3306)/fs"; got != want {
		t.Errorf("redact = %q; want %q", got, want)
	}
}

// silentListener accepts TCP connections and never says a word, like a
// database host whose server process hangs. It closes them at test end.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestOpenUnreachable needs no database: Open must fail fast, with one line
// that names the host and not the password, whether the port refuses
// connections or accepts them and never answers.
func TestOpenUnreachable(t *testing.T) {
	tests := []struct {
		name string
		addr string
	}{
		{"refused", "127.0.0.1:1"},
		{"silent", silentListener(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.ConnectTimeout = time.Second
			c.DSNs = []string{"flashstock:hunter2@tcp(" + tt.addr + ")/flashstock_0"}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			s, err := Open(ctx, c)
			elapsed := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) = nil error; want ErrUnreachable", tt.addr)
			}
			t.Logf("Open(%s) after %v: %v", tt.addr, elapsed.Round(time.Millisecond), err)
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("Open(%s) = %v; want ErrUnreachable", tt.addr, err)
			}
			if elapsed > 3*time.Second {
				t.Errorf("Open(%s) took %v; want under 3s with a 1s connect timeout", tt.addr, elapsed)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.addr) {
				t.Errorf("Open error %q does not name %s", msg, tt.addr)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("Open error %q leaks the password", msg)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("Open error %q spans several lines", msg)
			}
		})
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	_, err := Open(context.Background(), DefaultConfig())
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open(DefaultConfig()) = %v; want ErrInvalidConfig", err)
	}
}
