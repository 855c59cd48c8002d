package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// Identity puts a shopper's identity on an outgoing request. Implementations
// are safe for concurrent use and never block.
type Identity interface {
	// Authorize sets the headers that make req come from user.
	Authorize(h http.Header, user string)
}

// HeaderIdentity names the shopper in the X-User-ID header, for servers
// started with --trust-user-header (an authenticating gateway in front).
type HeaderIdentity struct{}

// Authorize sets X-User-ID.
func (HeaderIdentity) Authorize(h http.Header, user string) { h.Set("X-User-ID", user) }

// JWTIdentity mints an HS256 bearer token per request, with the user as the
// subject and an expiry TTL from now.
type JWTIdentity struct {
	Secret []byte
	TTL    time.Duration
	Now    func() time.Time
}

// Authorize sets "Authorization: Bearer <JWT>".
func (j JWTIdentity) Authorize(h http.Header, user string) {
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	t := now()
	h.Set("Authorization", "Bearer "+MintJWT(j.Secret, user, t, t.Add(j.TTL)))
}

// jwtHeader is the fixed, pre-encoded JOSE header {"alg":"HS256","typ":"JWT"}.
var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// jwtClaims are the registered claims the server reads.
type jwtClaims struct {
	Sub string `json:"sub"`
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
}

// MintJWT returns a compact HS256 JSON Web Token (RFC 7519) for subject sub,
// issued at iat and expiring at exp (both as NumericDate seconds), signed with
// secret.
func MintJWT(secret []byte, sub string, iat, exp time.Time) string {
	claims, err := json.Marshal(jwtClaims{Sub: sub, Iat: iat.Unix(), Exp: exp.Unix()})
	if err != nil {
		panic("client: marshal JWT claims: " + err.Error()) // a struct of strings and ints always marshals
	}
	signingInput := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
