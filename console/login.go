package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Provider is an OpenID Connect issuer approvers log in with. Its issuer must be one of those
// the Authenticator trusts, and the Authenticator's audiences for it must include ClientID:
// the ID token from the login is verified and mapped to an identity exactly as the proxy
// verifies a bearer token.
type Provider struct {
	// Name is shown on the login page. Default: the issuer's host.
	Name string
	// IssuerURL is the issuer identifier. Required.
	IssuerURL string
	// ClientID and ClientSecret are the console's OAuth 2.0 client at the issuer. ClientID is
	// required; a public client has no secret (PKCE protects the code either way).
	ClientID     string
	ClientSecret string
	// Scopes are requested besides openid. Default: profile, email, groups.
	Scopes []string
	// HTTPClient reaches the issuer. Default: http.DefaultClient with a 30s timeout.
	HTTPClient *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

func (p *Provider) name() string {
	if p.Name != "" {
		return p.Name
	}
	if u, err := url.Parse(p.IssuerURL); err == nil && u.Host != "" {
		return u.Host
	}
	return p.IssuerURL
}

// discover fetches the issuer's discovery document once it is reachable.
func (p *Provider) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.provider != nil {
		return p.provider, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.HTTPClient), 10*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(ctx, p.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", p.IssuerURL, err)
	}
	p.provider = op
	return op, nil
}

func (p *Provider) oauth2Config(op *oidc.Provider, redirectURL string) *oauth2.Config {
	scopes := p.Scopes
	if len(scopes) == 0 {
		scopes = []string{"profile", "email", "groups"}
	}
	return &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret,
		Endpoint:     op.Endpoint(),
		RedirectURL:  redirectURL,
		Scopes:       append([]string{oidc.ScopeOpenID}, scopes...),
	}
}

func (s *Server) provider(name string) *Provider {
	for _, p := range s.opts.Providers {
		if p.name() == name {
			return p
		}
	}
	return nil
}

// handleLogin starts the authorization code flow with PKCE, or lets the approver choose among
// several providers.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	p := s.provider(r.URL.Query().Get("provider"))
	if p == nil && len(s.opts.Providers) == 1 {
		p = s.opts.Providers[0]
	}
	if p == nil {
		var names []string
		for _, p := range s.opts.Providers {
			names = append(names, p.name())
		}
		s.render(w, r, http.StatusOK, "login", &page{Title: "Sign in", Data: loginPage{Providers: names, Next: next}})
		return
	}
	op, err := p.discover(r.Context())
	if err != nil {
		s.log.Error("login provider unavailable", "provider", p.name(), "err", err)
		s.renderError(w, r, http.StatusServiceUnavailable, "The identity provider "+p.name()+" cannot be reached right now. Try again shortly.")
		return
	}
	st := loginState{
		State:    randomString(24),
		Nonce:    randomString(24),
		Verifier: oauth2.GenerateVerifier(),
		Provider: p.name(),
		Next:     next,
		Expires:  s.clock.Now().Add(10 * time.Minute),
	}
	sealed, err := s.sealer.seal(loginCookie, st)
	if err != nil {
		s.renderError(w, r, http.StatusInternalServerError, "Could not start the login.")
		return
	}
	// Lax, not Strict: the issuer's redirect back to the callback is a cross-site navigation,
	// and this cookie must come with it. It holds no identity, only what proves the callback
	// answers the login this browser started.
	s.setCookie(w, loginCookie, sealed, st.Expires, http.SameSiteLaxMode)
	u := p.oauth2Config(op, s.callbackURL()).AuthCodeURL(st.State,
		oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// handleCallback exchanges the code, verifies the ID token with the Authenticator and starts
// the session.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, msg string, err error) {
		s.log.Warn("login failed", "reason", msg, "err", err)
		s.renderError(w, r, code, msg+" Start again from the sign-in page.")
	}
	c, err := r.Cookie(loginCookie)
	if err != nil {
		fail(http.StatusBadRequest, "This login was not started in this browser, or took longer than 10 minutes.", err)
		return
	}
	clearCookie(w, loginCookie, http.SameSiteLaxMode)
	var st loginState
	if err := s.sealer.open(loginCookie, c.Value, &st); err != nil || !s.clock.Now().Before(st.Expires) {
		fail(http.StatusBadRequest, "This login was not started in this browser, or took longer than 10 minutes.", err)
		return
	}
	q := r.URL.Query()
	if q.Get("state") == "" || q.Get("state") != st.State {
		fail(http.StatusBadRequest, "The login answer does not match the login this browser started.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusForbidden, "The identity provider refused the login ("+truncate(e, 64)+").", nil)
		return
	}
	p := s.provider(st.Provider)
	if p == nil {
		fail(http.StatusBadRequest, "Unknown identity provider.", nil)
		return
	}
	op, err := p.discover(r.Context())
	if err != nil {
		fail(http.StatusServiceUnavailable, "The identity provider cannot be reached right now.", err)
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), p.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := p.oauth2Config(op, s.callbackURL()).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		fail(http.StatusForbidden, "The identity provider did not accept the login code.", err)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		fail(http.StatusForbidden, "The identity provider sent no ID token.", nil)
		return
	}
	id, err := s.opts.Authenticator.AuthenticateToken(ctx, rawID)
	if err != nil {
		fail(http.StatusForbidden, "Your identity could not be verified.", err)
		return
	}
	if nonce, err := tokenNonce(rawID); err != nil || nonce != st.Nonce {
		fail(http.StatusForbidden, "The ID token was not issued for this login.", err)
		return
	}
	now := s.clock.Now()
	sess := session{ID: randomString(18), Identity: id.Identity, Provider: p.name(), Issued: now, Expires: now.Add(s.opts.SessionMaxAge)}
	if !id.Expiry.IsZero() && id.Expiry.Before(sess.Expires) {
		sess.Expires = id.Expiry
	}
	sealed, err := s.sealer.seal(sessionCookie, sess)
	if err != nil {
		fail(http.StatusInternalServerError, "Could not start the session.", err)
		return
	}
	s.setCookie(w, sessionCookie, sealed, sess.Expires, http.SameSiteStrictMode)
	s.log.Info("approver signed in", "user", id.User, "provider", p.name(), "expires", sess.Expires)
	// A SameSite=Strict cookie set during a navigation that started at another site is not sent
	// on the redirects of that navigation: continue from a page of our own instead of a 302.
	s.render(w, r, http.StatusOK, "continue", &page{Title: "Signed in", Data: st.Next})
}

// handleLogout ends the session: the cookie is cleared and its ID revoked until it would have
// expired.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if sess, err := s.sessionOf(r); err == nil {
		s.revoked.revoke(sess.ID, sess.Expires)
		s.log.Info("approver signed out", "user", sess.Identity.User)
	}
	clearCookie(w, sessionCookie, http.SameSiteStrictMode)
	s.render(w, r, http.StatusOK, "signedout", &page{Title: "Signed out"})
}

// tokenNonce reads the nonce claim of a token whose signature was verified already.
func tokenNonce(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("malformed token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", err
	}
	return c.Nonce, nil
}

// safeNext keeps a post-login destination on this site: a path, never a URL or a
// protocol-relative "//host".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

func (s *Server) callbackURL() string { return s.opts.ExternalURL.JoinPath("callback").String() }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
