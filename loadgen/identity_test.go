package loadgen

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// verifyJWT is an independent HS256 check, as a server would do it: it
// returns the claims of a token signed with secret and not expired at now.
func verifyJWT(secret []byte, token string, now time.Time) (jwtClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return jwtClaims{}, errors.New("not three parts")
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return jwtClaims{}, err
	}
	var h struct{ Alg, Typ string }
	if err := json.Unmarshal(hdr, &h); err != nil || h.Alg != "HS256" || h.Typ != "JWT" {
		return jwtClaims{}, errors.New("bad header " + string(hdr))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return jwtClaims{}, err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return jwtClaims{}, errors.New("bad signature")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwtClaims{}, err
	}
	var c jwtClaims
	if err := json.Unmarshal(body, &c); err != nil {
		return jwtClaims{}, err
	}
	if now.Unix() >= c.Exp {
		return jwtClaims{}, errors.New("expired")
	}
	return c, nil
}

func TestMintJWT(t *testing.T) {
	iat := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		secret    string
		verifyKey string
		sub       string
		now       time.Time
		wantErr   bool
	}{
		{"round trip", "s3cret", "s3cret", "user-42", iat, false},
		{"odd subject", "k", "k", `we"ird/ü+=`, iat.Add(time.Minute), false},
		{"wrong secret", "s3cret", "other", "user-42", iat, true},
		{"expired", "s3cret", "s3cret", "user-42", iat.Add(2 * time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := MintJWT([]byte(tt.secret), tt.sub, iat, iat.Add(time.Hour))
			if strings.ContainsAny(tok, "+/= ") {
				t.Errorf("MintJWT = %q; want base64url without padding", tok)
			}
			c, err := verifyJWT([]byte(tt.verifyKey), tok, tt.now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("verifyJWT(MintJWT(%q)) error = %v; want error %v", tt.sub, err, tt.wantErr)
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
	JWTIdentity{Secret: []byte("k"), TTL: time.Minute, Now: func() time.Time { return now }}.Authorize(h, "u1")
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatalf("Authorization = %q; want a bearer token", h.Get("Authorization"))
	}
	if c, err := verifyJWT([]byte("k"), tok, now); err != nil || c.Sub != "u1" {
		t.Errorf("JWTIdentity token: claims %+v, error %v; want sub u1", c, err)
	}
	h = http.Header{}
	HeaderIdentity{}.Authorize(h, "u2")
	if got := h.Get("X-User-ID"); got != "u2" {
		t.Errorf("HeaderIdentity: X-User-ID = %q; want u2", got)
	}
}
