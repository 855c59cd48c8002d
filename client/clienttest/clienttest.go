// Package clienttest holds test doubles for code that uses package client:
// an independent check of the JWTs a client mints, as a server would make
// it, and an in-memory OrderStore.
package clienttest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/flashstock/flashstock/client"
)

// Claims are the registered claims a Flashstock server reads from a JWT.
type Claims struct {
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// Errors of VerifyJWT.
var (
	ErrMalformed = errors.New("clienttest: malformed token")
	ErrSignature = errors.New("clienttest: bad signature")
	ErrExpired   = errors.New("clienttest: token expired")
)

// VerifyJWT returns the claims of an HS256 token signed with secret and not
// expired at now. It shares no code with client.MintJWT, so that a test of
// one checks the other.
func VerifyJWT(secret []byte, token string, now time.Time) (Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, ErrMalformed
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var h struct{ Alg, Typ string }
	if err := json.Unmarshal(hdr, &h); err != nil || h.Alg != "HS256" || h.Typ != "JWT" {
		return Claims{}, ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return Claims{}, ErrMalformed
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return Claims{}, ErrSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return Claims{}, ErrMalformed
	}
	var c Claims
	if err := json.Unmarshal(body, &c); err != nil {
		return Claims{}, ErrMalformed
	}
	if now.Unix() >= c.Exp {
		return Claims{}, ErrExpired
	}
	return c, nil
}

// MemStore is an OrderStore over maps. Rows are keyed by order ID; Units by
// item. Its methods honour ctx and never block.
type MemStore struct {
	Rows  map[string][]client.StoredOrder
	Units map[string]int64
}

var _ client.OrderStore = MemStore{}

// Orders returns the rows of the given orders.
func (m MemStore) Orders(ctx context.Context, ids []string) (map[string][]client.StoredOrder, error) {
	out := make(map[string][]client.StoredOrder)
	for _, id := range ids {
		if r, ok := m.Rows[id]; ok {
			out[id] = r
		}
	}
	return out, ctx.Err()
}

// SoldUnits returns the units of the given items.
func (m MemStore) SoldUnits(ctx context.Context, items []string) (map[string]int64, error) {
	out := make(map[string]int64)
	for _, id := range items {
		out[id] = m.Units[id]
	}
	return out, ctx.Err()
}
