package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// Shard backups (docs/backup.md): GET /v1/admin/shards/{shard}/snapshot
// streams a consistent snapshot of one shard from its leader, POST
// /v1/admin/shards/{shard}/restore installs one into the running group.
// Both answer only on the shard's leader; elsewhere 421 names it.

// Backups is what the API needs to back shards up and restore them. A core
// node implements it: New serves the routes when the Node it is given
// does. Methods are safe for concurrent use and return when ctx ends at
// the latest (a restore Raft has taken up may still complete).
type Backups interface {
	// BackupShards returns the cluster's shard count.
	BackupShards() int
	// OpenBackup takes a consistent snapshot of shard on this node, which
	// must lead it (else a *NotLeaderError). The caller closes it.
	OpenBackup(ctx context.Context, shard int) (Backup, error)
	// RestoreBackup replaces shard's state with the backup read from r, on
	// this node, which must lead it (else a *NotLeaderError). It reads r
	// to its end and checks it before anything changes; a refusal wraps
	// ErrBackupInvalid, ErrBackupMismatch or ErrBackupTooLarge.
	RestoreBackup(ctx context.Context, shard int, r io.Reader) (BackupInfo, error)
}

// Backup is one shard's backup, ready to be written out.
type Backup interface {
	Info() BackupInfo
	// Len is the length WriteTo writes, known before it starts.
	Len() int64
	WriteTo(w io.Writer) (int64, error)
	Close() error
}

// BackupInfo describes a shard backup.
type BackupInfo struct {
	Shards int `json:"shards"`
	Shard  int `json:"shard"`
	// Index and Term are the last log entry the backup covers: every
	// order it holds was confirmed at or below Index.
	Index   uint64    `json:"index"`
	Term    uint64    `json:"term"`
	Bytes   int64     `json:"bytes"` // of the FSM snapshot
	Created time.Time `json:"created"`
}

// NotLeaderError says that this node does not lead the shard, and who does.
type NotLeaderError struct {
	Shard      int
	Leader     string // the leader's node name; empty: no leader known
	LeaderHTTP string // its HTTP address, if known
}

func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return fmt.Sprintf("shard %d has no leader now", e.Shard)
	}
	return fmt.Sprintf("shard %d is led by %s (http %s): ask it", e.Shard, e.Leader, e.LeaderHTTP)
}

// Refusals of a restore that Backups implementations wrap.
var (
	ErrBackupInvalid  = errors.New("httpapi: invalid backup")
	ErrBackupMismatch = errors.New("httpapi: backup of another shard or shard count")
	ErrBackupTooLarge = errors.New("httpapi: backup too large")
)

// Bounds of backup transfers.
const (
	// BackupBodyMax bounds a restore's body: raftstore.BackupSizeMax of
	// snapshot plus its header and checksum.
	BackupBodyMax = 8<<30 + 1<<10
	// backupTransferMax bounds the time to send or receive one shard's
	// backup (the server's own timeouts are seconds).
	backupTransferMax = 30 * time.Minute
)

// restoreRoute is the route whose body may be BackupBodyMax (limitBody).
const restoreRoute = "/v1/admin/shards/:shard/restore"

// LeaderHeader names the shard leader's HTTP address on a 421 answer.
const LeaderHeader = "X-Flashstock-Leader"

// backupRoutes serves the backup routes of a node that has Backups.
type backupRoutes struct {
	s *Server
	b Backups
}

func (s *Server) routeBackups(v1 *echo.Group, b Backups) {
	r := &backupRoutes{s: s, b: b}
	v1.GET("/admin/shards/:shard/snapshot", r.snapshot, s.requireAdmin)
	v1.POST("/admin/shards/:shard/restore", r.restore, s.requireAdmin)
}

// shardParam reads and checks the :shard parameter.
func (r *backupRoutes) shardParam(c echo.Context) (int, error) {
	n, err := strconv.Atoi(c.Param("shard"))
	if err != nil || n < 0 || n >= r.b.BackupShards() {
		return 0, invalid("shard must be 0..%d", r.b.BackupShards()-1)
	}
	return n, nil
}

// snapshot streams a shard's backup: application/octet-stream of a known
// length, so a transfer cut short is an error for the client too.
func (r *backupRoutes) snapshot(c echo.Context) error {
	shard, err := r.shardParam(c)
	if err != nil {
		return err
	}
	w := c.Response()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupTransferMax))
	b, err := r.b.OpenBackup(c.Request().Context(), shard)
	if err != nil {
		return backupError(c, err)
	}
	defer b.Close()
	info := b.Info()
	h := w.Header()
	h.Set(echo.HeaderContentType, echo.MIMEOctetStream)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(b.Len(), 10))
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=\"shard-%d-%d.fsnap\"", shard, info.Index))
	h.Set("X-Flashstock-Backup-Index", strconv.FormatUint(info.Index, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := b.WriteTo(w); err != nil {
		// The length is promised: net/http closes the connection.
		r.s.log.Warn("shard backup cut short", "shard", shard, "err", err)
	}
	return nil
}

// restore installs the backup in the body into the shard's group.
func (r *backupRoutes) restore(c echo.Context) error {
	shard, err := r.shardParam(c)
	if err != nil {
		return err
	}
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != echo.MIMEOctetStream {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be " + echo.MIMEOctetStream}
	}
	// The upload and the restore both outlast the server's timeouts: the
	// answer must not be cut off after the shard was restored.
	rc := http.NewResponseController(c.Response())
	_ = rc.SetReadDeadline(time.Now().Add(backupTransferMax))
	_ = rc.SetWriteDeadline(time.Now().Add(backupTransferMax))
	info, err := r.b.RestoreBackup(req.Context(), shard, req.Body)
	if err != nil {
		return backupError(c, err)
	}
	return c.JSON(http.StatusOK, map[string]BackupInfo{"restored": info})
}

// backupError maps the errors of Backups to API errors.
func backupError(c echo.Context, err error) error {
	var nl *NotLeaderError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &nl) && nl.Leader == "":
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: nl.Error()}
	case errors.As(err, &nl):
		if nl.LeaderHTTP != "" {
			c.Response().Header().Set(LeaderHeader, nl.LeaderHTTP)
		}
		return &apiError{status: http.StatusMisdirectedRequest, code: "not_leader", message: nl.Error()}
	case errors.Is(err, ErrBackupTooLarge), errors.As(err, &tooBig):
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", message: err.Error()}
	case errors.Is(err, ErrBackupMismatch):
		return &apiError{status: http.StatusConflict, code: "backup_mismatch", message: err.Error()}
	case errors.Is(err, ErrBackupInvalid):
		return &apiError{status: http.StatusBadRequest, code: "invalid_backup", message: err.Error()}
	}
	return err
}
