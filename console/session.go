package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// Cookie names. The __Host- prefix makes browsers accept them only with Secure, Path=/ and no
// Domain: no other host, not even a sibling subdomain, can set or shadow them.
const (
	sessionCookie = "__Host-gatehouse-console"
	loginCookie   = "__Host-gatehouse-login"
)

// errNoSession is returned for a missing, unreadable, expired or revoked session cookie.
var errNoSession = errors.New("console: no valid session")

// session is what the session cookie carries, sealed: the identity verified at login.
type session struct {
	// ID names the session; the CSRF token and the revocation at logout are bound to it.
	ID       string         `json:"sid"`
	Identity trail.Identity `json:"id"`
	// Provider is the login provider's name.
	Provider string    `json:"p"`
	Issued   time.Time `json:"iat"`
	// Expires is the ID token's expiry or the longest session, whichever comes first: then the
	// approver logs in again.
	Expires time.Time `json:"exp"`
}

// loginState is what the login cookie carries between the redirect to the issuer and the
// callback.
type loginState struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Provider string    `json:"p"`
	Next     string    `json:"next"`
	Expires  time.Time `json:"exp"`
}

// sealer seals cookie values with AES-256-GCM. The cookie's name is the additional data, so a
// value sealed for one cookie does not open as another.
type sealer struct {
	aead    cipher.AEAD
	csrfKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("%w: the session key must have at least 32 bytes", ErrInvalidOption)
	}
	block, err := aes.NewCipher(derive(key, "gatehouse console session cookie"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, csrfKey: derive(key, "gatehouse console csrf")}, nil
}

// derive returns a 32-byte key for purpose from the configured key.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

func (s *sealer) seal(name string, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(data)+s.aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, data, []byte(name))), nil
}

func (s *sealer) open(name, value string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errNoSession
	}
	data, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errNoSession
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errNoSession
	}
	return nil
}

// csrfToken is the synchronizer token of a session: an HMAC of its ID, so it needs no storage,
// differs for every session and cannot be derived without the key.
func (s *sealer) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sealer) validCSRF(sessionID, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(s.csrfToken(sessionID)))
}

// revocations remembers the sessions ended by logout until they would have expired anyway.
type revocations struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (r *revocations) revoke(id string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]time.Time{}
	}
	r.ids[id] = until
}

func (r *revocations) revoked(id string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, until := range r.ids {
		if now.After(until) {
			delete(r.ids, k)
		}
	}
	_, ok := r.ids[id]
	return ok
}

// sessionOf returns the valid session of r.
func (s *Server) sessionOf(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, errNoSession
	}
	var sess session
	if err := s.sealer.open(sessionCookie, c.Value, &sess); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if sess.ID == "" || sess.Identity.User == "" || !now.Before(sess.Expires) || s.revoked.revoked(sess.ID, now) {
		return nil, errNoSession
	}
	return &sess, nil
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, expires time.Time, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Expires:  expires,
		MaxAge:   max(1, int(expires.Sub(s.clock.Now()).Seconds())),
		Secure:   true,
		HttpOnly: true,
		SameSite: sameSite,
	})
}

func clearCookie(w http.ResponseWriter, name string, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: sameSite})
}

// inGroups reports whether id is in one of groups.
func inGroups(id trail.Identity, groups []string) bool {
	return slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(groups, g) })
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
