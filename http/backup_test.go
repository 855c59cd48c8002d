package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/flashstock/flashstock/internal/metrics"
)

// fakeBackups is a node with Backups: it leads shard 0, shard 1 is led by
// n1, shard 2 has no leader. A restore's body decides its answer.
type fakeBackups struct {
	fakeNode
	restored []byte
}

func (f *fakeBackups) BackupShards() int { return 3 }

func (f *fakeBackups) lead(shard int) error {
	switch shard {
	case 0:
		return nil
	case 1:
		return &NotLeaderError{Shard: 1, Leader: "n1", LeaderHTTP: "10.0.0.1:8080"}
	}
	return &NotLeaderError{Shard: shard}
}

func (f *fakeBackups) OpenBackup(_ context.Context, shard int) (Backup, error) {
	if err := f.lead(shard); err != nil {
		return nil, err
	}
	return fakeBackup("snapshot-bytes"), nil
}

func (f *fakeBackups) RestoreBackup(_ context.Context, shard int, r io.Reader) (BackupInfo, error) {
	if err := f.lead(shard); err != nil {
		return BackupInfo{}, err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return BackupInfo{}, err
	}
	switch {
	case bytes.HasPrefix(b, []byte("corrupt")):
		return BackupInfo{}, fmt.Errorf("%w: checksum", ErrBackupInvalid)
	case bytes.HasPrefix(b, []byte("other")):
		return BackupInfo{}, fmt.Errorf("%w: shard 2 of 3", ErrBackupMismatch)
	}
	f.restored = b
	return BackupInfo{Shards: 3, Shard: shard, Index: 42, Term: 2, Bytes: int64(len(b))}, nil
}

type fakeBackup string

func (b fakeBackup) Info() BackupInfo { return BackupInfo{Shards: 3, Index: 42} }
func (b fakeBackup) Len() int64       { return int64(len(b)) }
func (b fakeBackup) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, string(b))
	return int64(n), err
}
func (b fakeBackup) Close() error { return nil }

// TestBackupRoutes: the shard backup routes answer only the admin, only on
// the shard's leader (421 naming it elsewhere, 503 without one), stream
// the backup with its length, take restore bodies past the API's usual
// body limit up to BackupBodyMax, and map refusals to 4xx JSON errors.
func TestBackupRoutes(t *testing.T) {
	node := &fakeBackups{}
	cfg := DefaultConfig()
	cfg.AdminToken, cfg.TrustUserHeader = testToken, true
	s, err := New(cfg, &fakeEngine{}, node, metrics.New(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.console.close)
	big := bytes.Repeat([]byte("b"), 3*int(cfg.BodyLimit)) // past the usual body limit
	tests := []struct {
		name, method, path, token, ctype string
		body                             []byte
		length                           int64 // Content-Length to claim; 0: the body's
		status                           int
		code, leader, want               string
	}{
		{"no token", "GET", "/v1/admin/shards/0/snapshot", "", "", nil, 0, 401, "unauthenticated", "", ""},
		{"bad shard", "GET", "/v1/admin/shards/3/snapshot", testToken, "", nil, 0, 400, "invalid_argument", "", ""},
		{"snapshot", "GET", "/v1/admin/shards/0/snapshot", testToken, "", nil, 0, 200, "", "", "snapshot-bytes"},
		{"snapshot on a follower", "GET", "/v1/admin/shards/1/snapshot", testToken, "", nil, 0, 421, "not_leader", "10.0.0.1:8080", ""},
		{"snapshot without a leader", "GET", "/v1/admin/shards/2/snapshot", testToken, "", nil, 0, 503, "unavailable", "", ""},
		{"restore", "POST", "/v1/admin/shards/0/restore", testToken, "application/octet-stream", big, 0, 200, "", "", `"index":42`},
		{"restore as JSON", "POST", "/v1/admin/shards/0/restore", testToken, "application/json", big, 0, 415, "unsupported_media_type", "", ""},
		{"restore too large", "POST", "/v1/admin/shards/0/restore", testToken, "application/octet-stream", []byte("x"), BackupBodyMax + 1, 413, "payload_too_large", "", ""},
		{"restore corrupt", "POST", "/v1/admin/shards/0/restore", testToken, "application/octet-stream", []byte("corrupt"), 0, 400, "invalid_backup", "", ""},
		{"restore of another shard", "POST", "/v1/admin/shards/0/restore", testToken, "application/octet-stream", []byte("other"), 0, 409, "backup_mismatch", "", ""},
		{"restore on a follower", "POST", "/v1/admin/shards/1/restore", testToken, "application/octet-stream", []byte("x"), 0, 421, "not_leader", "10.0.0.1:8080", ""},
		{"a usual route keeps its limit", "POST", "/v1/items", testToken, "application/json", big, 0, 413, "payload_too_large", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, bytes.NewReader(tc.body))
			if tc.length > 0 {
				req.ContentLength = tc.length
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d %s; want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			}
			if tc.code != "" {
				var body errorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code {
					t.Fatalf("body %s; want error code %q", rec.Body, tc.code)
				}
			}
			if got := rec.Header().Get(LeaderHeader); got != tc.leader {
				t.Errorf("%s = %q; want %q", LeaderHeader, got, tc.leader)
			}
			if tc.want != "" && !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("body %s; want %q in it", rec.Body, tc.want)
			}
			if tc.name == "snapshot" && rec.Header().Get("Content-Length") != strconv.Itoa(len("snapshot-bytes")) {
				t.Errorf("Content-Length = %q; want the backup's length", rec.Header().Get("Content-Length"))
			}
		})
	}
	if !bytes.Equal(node.restored, big) {
		t.Errorf("restored %d bytes; want the %d of the body", len(node.restored), len(big))
	}
}
