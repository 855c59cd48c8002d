package httpapi

import (
	"crypto/subtle"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/sale"
)

// Context keys set by the identity middleware.
const (
	ctxUser  = "user"
	ctxAdmin = "admin"
)

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(c echo.Context) string {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) isAdmin(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) == 1
}

// shopper returns the authenticated shopper: from a valid HS256 JWT when
// one is presented (a presented but invalid token is an error, never a fall
// back to the header), else from X-User-ID when that header is trusted.
func (s *Server) shopper(c echo.Context) (string, error) {
	if tok := bearer(c); tok != "" && s.cfg.AuthSecret != nil {
		claims := jwt.RegisteredClaims{}
		_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return s.cfg.AuthSecret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now))
		if err != nil {
			return "", &apiError{status: errUnauthorized.status, code: errUnauthorized.code, message: "invalid token: " + err.Error()}
		}
		if !sale.ValidID(claims.Subject) {
			return "", &apiError{status: errUnauthorized.status, code: errUnauthorized.code, message: "token subject is not a valid user id"}
		}
		return claims.Subject, nil
	}
	if s.cfg.TrustUserHeader {
		if u := c.Request().Header.Get("X-User-ID"); u != "" {
			if !sale.ValidID(u) {
				return "", invalid("X-User-ID must be " + sale.IDRule)
			}
			return u, nil
		}
	}
	return "", errUnauthorized
}

// The identity middlewares first ask authGate whether the client's IP has
// failed too often (429 before any check), then check, and count a
// failure against the IP.

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.authGate(c); err != nil {
			return err
		}
		if !s.isAdmin(bearer(c)) {
			s.authFailed(c)
			return errUnauthorized
		}
		c.Set(ctxAdmin, true)
		return next(c)
	}
}

func (s *Server) requireShopper(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.authGate(c); err != nil {
			return err
		}
		return s.asShopper(c, next)
	}
}

// asShopper identifies the shopper and calls next, or counts the failure.
func (s *Server) asShopper(c echo.Context, next echo.HandlerFunc) error {
	u, err := s.shopper(c)
	if err != nil {
		s.authFailed(c)
		return err
	}
	c.Set(ctxUser, u)
	return next(c)
}

func (s *Server) requireShopperOrAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.authGate(c); err != nil {
			return err
		}
		if s.isAdmin(bearer(c)) {
			c.Set(ctxAdmin, true)
			return next(c)
		}
		return s.asShopper(c, next)
	}
}
