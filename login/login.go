// Package login logs a person in to the OIDC issuer a Gatehouse proxy trusts, the way kubelogin
// and `tsh kube login` do, and keeps their tokens for kubectl's exec credential plugin
// (`gatehouse credential`).
//
// Two flows: the authorization code flow with PKCE (S256) and a loopback redirect
// (http://127.0.0.1:<port>/callback, RFC 8252) in the browser, or, on a machine without one,
// the device flow (RFC 8628) when the issuer offers it. The ID token is verified (signature,
// issuer, audience, expiry, nonce) before it is kept.
//
// Tokens are cached per issuer and client in the user's cache directory
// (gatehouse/credentials, 0700; files 0600). A credential request returns the cached ID token
// while it is valid for another minute, else refreshes it with the refresh token (rotating
// it), else logs in again when it may ask the person, and otherwise fails with the command to
// run. Tokens are never logged.
package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"k8s.io/utils/clock"
)

// DefaultClientID is the OAuth client of `gatehouse login`.
const DefaultClientID = "gatehouse"

// DefaultScopes ask for the ID token, the groups claim and a refresh token.
var DefaultScopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}

// Options configure a login.
type Options struct {
	// Issuer is the issuer URL. Required.
	Issuer string
	// ClientID is the OAuth client. Default: DefaultClientID.
	ClientID string
	// IssuerCA is the PEM CA bundle the issuer's certificate chains to. Default: the system's.
	IssuerCA []byte
	// Scopes are requested. Default: DefaultScopes.
	Scopes []string
	// Device uses the device flow instead of the browser.
	Device bool
	// OpenBrowser opens the authorization URL. Default: none (the URL is printed to Prompt).
	OpenBrowser func(url string) error
	// ListenAddress is the loopback address of the redirect listener. Default: 127.0.0.1:0.
	ListenAddress string
	// Prompt receives the instructions for the person (the URL to open, the device code).
	// Default: os.Stderr.
	Prompt io.Writer
	// CacheDir holds the token cache. Default: gatehouse/credentials in the user cache directory.
	CacheDir string
	// Timeout bounds the wait for the person. Default: 5 minutes.
	Timeout time.Duration
	// Clock tells the time. Default: the real clock.
	Clock clock.PassiveClock
}

func (o *Options) setDefaults() error {
	if o.Issuer == "" {
		return errors.New("login: the issuer URL is required")
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	if len(o.Scopes) == 0 {
		o.Scopes = DefaultScopes
	}
	if o.ListenAddress == "" {
		o.ListenAddress = "127.0.0.1:0"
	}
	if o.Prompt == nil {
		o.Prompt = os.Stderr
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("login: no cache directory for the tokens: %w", err)
		}
		o.CacheDir = filepath.Join(dir, "gatehouse", "credentials")
	}
	return nil
}

// Token is a cached login.
type Token struct {
	Issuer       string    `json:"issuer"`
	ClientID     string    `json:"clientID"`
	IDToken      string    `json:"idToken"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry"`
	// Subject and Name say who logged in, for messages.
	Subject string `json:"subject"`
	Name    string `json:"name,omitempty"`
	// IssuerCA is the CA bundle the issuer was trusted with at login.
	IssuerCA string `json:"issuerCA,omitempty"`
}

// ErrLoginRequired is returned by Credential when there is no usable token and it may not ask
// the person to log in.
var ErrLoginRequired = errors.New("login required")

// client is an OIDC client for one issuer.
type client struct {
	o        Options
	ctx      context.Context
	provider *oidc.Provider
	oauth    oauth2.Config
	device   string
}

func newClient(ctx context.Context, o Options) (*client, error) {
	hc := http.DefaultClient
	if len(o.IssuerCA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.IssuerCA) {
			return nil, errors.New("login: no certificate in the issuer's CA bundle")
		}
		hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	ctx = oidc.ClientContext(ctx, hc)
	provider, err := oidc.NewProvider(ctx, o.Issuer)
	if err != nil {
		return nil, fmt.Errorf("login: discovery of %s: %w", o.Issuer, err)
	}
	var extra struct {
		Device string `json:"device_authorization_endpoint"`
	}
	_ = provider.Claims(&extra)
	ep := provider.Endpoint()
	ep.DeviceAuthURL = extra.Device
	ep.AuthStyle = oauth2.AuthStyleInParams
	return &client{o: o, ctx: ctx, provider: provider, device: extra.Device,
		oauth: oauth2.Config{ClientID: o.ClientID, Endpoint: ep, Scopes: o.Scopes}}, nil
}

// Login runs the browser flow (or the device flow with Options.Device, or when no browser can
// be opened and the issuer offers it), verifies the ID token and caches it.
func Login(ctx context.Context, o Options) (*Token, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	c, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, o.Timeout)
	defer cancel()
	var tok *oauth2.Token
	var nonce string
	switch {
	case o.Device && c.device == "":
		return nil, fmt.Errorf("login: %s does not offer the device flow; log in with a browser", o.Issuer)
	case o.Device:
		tok, err = c.deviceFlow(ctx)
	default:
		tok, nonce, err = c.codeFlow(ctx)
	}
	if err != nil {
		return nil, err
	}
	t, err := c.verify(ctx, tok, nonce)
	if err != nil {
		return nil, err
	}
	return t, save(o, t)
}

func (c *client) codeFlow(ctx context.Context) (*oauth2.Token, string, error) {
	l, err := net.Listen("tcp", c.o.ListenAddress)
	if err != nil {
		return nil, "", fmt.Errorf("login: listen for the redirect: %w", err)
	}
	defer l.Close()
	cfg := c.oauth
	cfg.RedirectURL = "http://" + l.Addr().String() + "/callback"
	verifier := oauth2.GenerateVerifier()
	state, nonce := randomString(), randomString()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))

	type result struct {
		code string
		err  error
	}
	results := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			// Not the answer to our request (a stale tab, or a forged redirect): ignore it.
			http.Error(w, "unexpected state; return to your terminal", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = fmt.Errorf("login: the issuer refused: %s %s", q.Get("error"), q.Get("error_description"))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><p>Login failed: %s. You can close this window.</p>", html.EscapeString(q.Get("error")))
		default:
			res.code = q.Get("code")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<!doctype html><p>Logged in to Gatehouse. You can close this window and return to your terminal.</p>")
		}
		select {
		case results <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		// Let the browser have its page: the handler has answered by the time a result arrives,
		// but its response may not be on the wire yet.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	opened := false
	if c.o.OpenBrowser != nil {
		opened = c.o.OpenBrowser(authURL) == nil
	}
	if opened {
		fmt.Fprintf(c.o.Prompt, "Opened your browser to log in. If it did not open, visit:\n\n  %s\n\n", authURL)
	} else {
		fmt.Fprintf(c.o.Prompt, "Open this address in a browser on this machine to log in:\n\n  %s\n\n", authURL)
	}
	var res result
	select {
	case res = <-results:
	case <-ctx.Done():
		return nil, "", fmt.Errorf("login: no answer from the browser: %w", ctx.Err())
	}
	if res.err != nil {
		return nil, "", res.err
	}
	tok, err := cfg.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, "", fmt.Errorf("login: exchange the code: %w", err)
	}
	return tok, nonce, nil
}

func (c *client) deviceFlow(ctx context.Context) (*oauth2.Token, error) {
	da, err := c.oauth.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("login: device authorization: %w", err)
	}
	fmt.Fprintf(c.o.Prompt, "To log in, open %s on any device and enter the code %s", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.o.Prompt, " (or open %s)", da.VerificationURIComplete)
	}
	fmt.Fprintln(c.o.Prompt)
	tok, err := c.oauth.DeviceAccessToken(ctx, da)
	if err != nil {
		return nil, fmt.Errorf("login: device flow: %w", err)
	}
	return tok, nil
}

// verify checks the ID token of tok and turns it into a Token.
func (c *client) verify(ctx context.Context, tok *oauth2.Token, nonce string) (*Token, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("login: the issuer returned no ID token")
	}
	idTok, err := c.provider.Verifier(&oidc.Config{ClientID: c.o.ClientID, Now: c.o.Clock.Now}).Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("login: the ID token does not verify: %w", err)
	}
	if nonce != "" && idTok.Nonce != nonce {
		return nil, errors.New("login: the ID token's nonce does not match the login")
	}
	var claims struct {
		Name string `json:"name"`
	}
	_ = idTok.Claims(&claims)
	return &Token{Issuer: c.o.Issuer, ClientID: c.o.ClientID, IDToken: raw, RefreshToken: tok.RefreshToken, Expiry: idTok.Expiry,
		Subject: idTok.Subject, Name: claims.Name, IssuerCA: string(c.o.IssuerCA)}, nil
}

// Credential returns a valid ID token: the cached one while it is valid for another minute,
// else a refreshed one, else (when interactive) one from a new login.
func Credential(ctx context.Context, o Options, interactive bool) (*Token, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	cached, err := load(o)
	if err == nil && len(o.IssuerCA) == 0 && cached.IssuerCA != "" {
		o.IssuerCA = []byte(cached.IssuerCA)
	}
	if err == nil && cached.Expiry.After(o.Clock.Now().Add(time.Minute)) {
		return cached, nil
	}
	if err == nil && cached.RefreshToken != "" {
		if t, rerr := refresh(ctx, o, cached); rerr == nil {
			return t, nil
		}
		// A refresh token the issuer no longer accepts: log in again from scratch.
	}
	if !interactive {
		return nil, fmt.Errorf("%w: run `gatehouse login --issuer %s` (no valid cached token for client %s)", ErrLoginRequired, o.Issuer, o.ClientID)
	}
	return Login(ctx, o)
}

func refresh(ctx context.Context, o Options, cached *Token) (*Token, error) {
	c, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	tok, err := c.oauth.TokenSource(c.ctx, &oauth2.Token{RefreshToken: cached.RefreshToken}).Token()
	if err != nil {
		return nil, err
	}
	t, err := c.verify(c.ctx, tok, "")
	if err != nil {
		return nil, err
	}
	if t.RefreshToken == "" {
		t.RefreshToken = cached.RefreshToken
	}
	return t, save(o, t)
}

// Logout forgets the cached token of the issuer and client.
func Logout(o Options) error {
	if err := o.setDefaults(); err != nil {
		return err
	}
	err := os.Remove(cacheFile(o))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func cacheFile(o Options) string {
	sum := sha256.Sum256([]byte(o.Issuer + "\x00" + o.ClientID))
	return filepath.Join(o.CacheDir, hex.EncodeToString(sum[:12])+".json")
}

func save(o Options, t *Token) error {
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return fmt.Errorf("login: token cache: %w", err)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(o.CacheDir, ".token-*")
	if err != nil {
		return fmt.Errorf("login: token cache: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), cacheFile(o))
}

func load(o Options) (*Token, error) {
	path := cacheFile(o)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("login: %s is readable by others; delete it and log in again", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Token
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, err
	}
	if t.Issuer != o.Issuer || t.ClientID != o.ClientID {
		return nil, errors.New("login: cached token of another issuer")
	}
	return &t, nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SessionServer returns server with the client-options path prefix that names a Gatehouse
// session: https://proxy/gatehouse/client/session=NAME. kubectl cannot send the
// Gatehouse-Session header, but it keeps a server URL's path, which the proxy strips.
func SessionServer(server, session string) string {
	if session == "" {
		return server
	}
	return strings.TrimSuffix(server, "/") + "/gatehouse/client/session=" + escapeOption(session)
}

// escapeOption escapes a client option's value for the path form (',' and '=' separate
// options, '/' ends them).
func escapeOption(v string) string {
	var b strings.Builder
	for _, c := range []byte(v) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
