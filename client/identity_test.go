package client_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/client/clienttest"
)

func TestMintJWT(t *testing.T) {
	iat := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		secret    string
		verifyKey string
		sub       string
		now       time.Time
		wantErr   error
	}{
		{"round trip", "s3cret", "s3cret", "user-42", iat, nil},
		{"odd subject", "k", "k", `we"ird/ü+=`, iat.Add(time.Minute), nil},
		{"wrong secret", "s3cret", "other", "user-42", iat, clienttest.ErrSignature},
		{"expired", "s3cret", "s3cret", "user-42", iat.Add(2 * time.Hour), clienttest.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := client.MintJWT([]byte(tt.secret), tt.sub, iat, iat.Add(time.Hour))
			if strings.ContainsAny(tok, "+/= ") {
				t.Errorf("MintJWT = %q; want base64url without padding", tok)
			}
			c, err := clienttest.VerifyJWT([]byte(tt.verifyKey), tok, tt.now)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("VerifyJWT(MintJWT(%q)) error = %v; want %v", tt.sub, err, tt.wantErr)
			}
			if err == nil && (c.Sub != tt.sub || c.Iat != iat.Unix() || c.Exp != iat.Add(time.Hour).Unix()) {
				t.Errorf("claims = %+v; want sub %q iat %d exp %d", c, tt.sub, iat.Unix(), iat.Add(time.Hour).Unix())
			}
		})
	}
}

func TestIdentities(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := http.Header{}
	client.JWTIdentity{Secret: []byte("k"), TTL: time.Minute, Now: func() time.Time { return now }}.Authorize(h, "u1")
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q; want a bearer token", h.Get("Authorization"))
	}
	if c, err := clienttest.VerifyJWT([]byte("k"), tok, now); err != nil || c.Sub != "u1" {
		t.Errorf("JWTIdentity token: claims %+v, error %v; want sub u1", c, err)
	}
	h = http.Header{}
	client.HeaderIdentity{}.Authorize(h, "u2")
	if got := h.Get("X-User-ID"); got != "u2" {
		t.Errorf("HeaderIdentity: X-User-ID = %q; want u2", got)
	}
}
