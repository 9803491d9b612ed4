package devoidc_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/devoidc"
)

var identities = []devoidc.Identity{
	{Name: "agent", Groups: []string{"agents"}},
	{Name: "approver", Groups: []string{"gatehouse:approvers"}},
}

func start(t *testing.T, o devoidc.Options) *devoidc.Issuer {
	t.Helper()
	if o.Identities == nil {
		o.Identities = identities
	}
	i, err := devoidc.Start(o)
	require.NoError(t, err)
	t.Cleanup(i.Close)
	return i
}

// browser follows nothing by itself: each redirect is looked at.
func browser(i *devoidc.Issuer) *http.Client {
	return &http.Client{
		Transport:     i.Client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func oauthConfig(i *devoidc.Issuer, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: devoidc.DefaultClientID, RedirectURL: redirect, Scopes: []string{oidc.ScopeOpenID, "groups", oidc.ScopeOfflineAccess},
		Endpoint: oauth2.Endpoint{AuthURL: i.URL + devoidc.PathAuth, TokenURL: i.URL + devoidc.PathToken, DeviceAuthURL: i.URL + devoidc.PathDeviceCode, AuthStyle: oauth2.AuthStyleInParams}}
}

// login plays the browser: open the authorization URL, pick identity on the login page, and
// return where the issuer redirects.
func login(t *testing.T, i *devoidc.Issuer, authURL, identity string) *url.URL {
	t.Helper()
	b := browser(i)
	resp, err := b.Get(authURL)
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(page))
	require.Contains(t, string(page), `value="`+identity+`"`, "the login page offers the identity")
	u, _ := url.Parse(authURL)
	form := u.Query()
	form.Set("identity", identity)
	resp, err = b.PostForm(i.URL+devoidc.PathAuth, form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := resp.Location()
	require.NoError(t, err)
	return loc
}

func TestAuthorizationCodeWithPKCE(t *testing.T) {
	i := start(t, devoidc.Options{})
	ctx := oidc.ClientContext(t.Context(), i.Client)
	provider, err := oidc.NewProvider(ctx, i.URL)
	require.NoError(t, err, "discovery")
	cfg := oauthConfig(i, "http://127.0.0.1:45678/callback")
	verifier := oauth2.GenerateVerifier()
	loc := login(t, i, cfg.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n0nce")), "agent")
	assert.Equal(t, "127.0.0.1:45678", loc.Host)
	assert.Equal(t, "st4te", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)

	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	raw, _ := tok.Extra("id_token").(string)
	idTok, err := provider.Verifier(&oidc.Config{ClientID: devoidc.DefaultClientID}).Verify(ctx, raw)
	require.NoError(t, err, "the ID token verifies against the JWKS")
	var claims struct {
		Groups []string `json:"groups"`
		Nonce  string   `json:"nonce"`
	}
	require.NoError(t, idTok.Claims(&claims))
	assert.Equal(t, "agent", idTok.Subject)
	assert.Equal(t, []string{"agents"}, claims.Groups)
	assert.Equal(t, "n0nce", claims.Nonce)

	_, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	assert.ErrorContains(t, err, "invalid_grant", "a code is used once")

	// Refresh tokens rotate: the old one is spent.
	refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	assert.NotEqual(t, tok.RefreshToken, refreshed.RefreshToken)
	_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	assert.ErrorContains(t, err, "invalid_grant")
}

func TestAuthorizationRequestsThatMustFail(t *testing.T) {
	i := start(t, devoidc.Options{})
	ctx := oidc.ClientContext(t.Context(), i.Client)
	good := oauthConfig(i, "http://127.0.0.1:45678/callback")
	verifier := oauth2.GenerateVerifier()

	t.Run("unregistered redirect URIs get an error page, not a redirect", func(t *testing.T) {
		for _, redirect := range []string{"https://evil.example/callback", "http://127.0.0.1.evil.example/callback", "http://127.0.0.1:45678/other", "http://10.0.0.1/callback"} {
			resp, err := browser(i).Get(oauthConfig(i, redirect).AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, redirect)
		}
	})
	t.Run("unknown clients", func(t *testing.T) {
		cfg := oauthConfig(i, "http://127.0.0.1:45678/callback")
		cfg.ClientID = "someone-else"
		resp, err := browser(i).Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("PKCE is required", func(t *testing.T) {
		loc := login(t, i, good.AuthCodeURL("s"), "agent")
		assert.Equal(t, "invalid_request", loc.Query().Get("error"))
	})
	t.Run("a wrong verifier", func(t *testing.T) {
		loc := login(t, i, good.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "agent")
		_, err := good.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assert.ErrorContains(t, err, "invalid_grant")
	})
	t.Run("another redirect URI at the token endpoint", func(t *testing.T) {
		loc := login(t, i, good.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "agent")
		other := oauthConfig(i, "http://127.0.0.1:1/callback")
		_, err := other.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
		assert.ErrorContains(t, err, "invalid_grant")
	})
	t.Run("an unknown identity", func(t *testing.T) {
		u, _ := url.Parse(good.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		form := u.Query()
		form.Set("identity", "root")
		resp, err := browser(i).PostForm(i.URL+devoidc.PathAuth, form)
		require.NoError(t, err)
		resp.Body.Close()
		loc, _ := resp.Location()
		assert.Equal(t, "access_denied", loc.Query().Get("error"))
	})
}

func TestDeviceFlow(t *testing.T) {
	i := start(t, devoidc.Options{})
	ctx := oidc.ClientContext(t.Context(), i.Client)
	cfg := oauthConfig(i, "")
	da, err := cfg.DeviceAuth(ctx)
	require.NoError(t, err)
	assert.Regexp(t, `^[A-Z]{4}-[A-Z]{4}$`, da.UserCode)

	// Before the user confirms, the poll is pending.
	form := url.Values{"client_id": {devoidc.DefaultClientID}, "grant_type": {devoidc.GrantDeviceCode}, "device_code": {da.DeviceCode}}
	resp, err := i.Client.PostForm(i.URL+devoidc.PathToken, form)
	require.NoError(t, err)
	var e struct{ Error string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	resp.Body.Close()
	assert.Equal(t, "authorization_pending", e.Error)

	// A wrong code is refused; the right one logs in.
	resp, err = i.Client.PostForm(i.URL+devoidc.PathDevice, url.Values{"user_code": {"BBBB-BBBB"}, "identity": {"approver"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, err = i.Client.PostForm(i.URL+devoidc.PathDevice, url.Values{"user_code": {strings.ToLower(da.UserCode)}, "identity": {"approver"}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := cfg.DeviceAccessToken(pctx, da)
	require.NoError(t, err)
	raw, _ := tok.Extra("id_token").(string)
	provider, err := oidc.NewProvider(ctx, i.URL)
	require.NoError(t, err)
	idTok, err := provider.Verifier(&oidc.Config{ClientID: devoidc.DefaultClientID}).Verify(ctx, raw)
	require.NoError(t, err)
	assert.Equal(t, "approver", idTok.Subject)
}

func TestMintAndKeyFile(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "issuer.key")
	i := start(t, devoidc.Options{KeyFile: keyFile})
	ctx := oidc.ClientContext(t.Context(), i.Client)
	provider, err := oidc.NewProvider(ctx, i.URL)
	require.NoError(t, err)
	verifier := provider.Verifier(&oidc.Config{ClientID: "gatehouse"})

	tok, err := i.Mint("approver")
	require.NoError(t, err)
	_, err = verifier.Verify(ctx, tok)
	require.NoError(t, err)
	again1, err := i.Mint("approver")
	require.NoError(t, err)
	assert.NotEqual(t, tok, again1, "every minted token is distinct (one token, one session)")
	_, err = i.Mint("root")
	require.ErrorIs(t, err, devoidc.ErrUnknownIdentity)

	// Another process with the key file mints tokens the running issuer's keys verify.
	tok, err = devoidc.MintFromKeyFile(keyFile, i.URL, "gatehouse", identities[0], time.Minute)
	require.NoError(t, err)
	idTok, err := verifier.Verify(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, "agent", idTok.Subject)

	// A restarted issuer with the same file keeps the keys.
	again := start(t, devoidc.Options{KeyFile: keyFile})
	assert.Equal(t, i.PublicKeys()[0].KeyID, again.PublicKeys()[0].KeyID)
}

func TestEveryAlgorithmAndAnotherIdentifier(t *testing.T) {
	i := start(t, devoidc.Options{Identifier: "https://login.example.com"})
	assert.Equal(t, "https://login.example.com", i.URL)
	assert.NotEqual(t, i.URL, i.ServerURL)
	ctx := oidc.ClientContext(t.Context(), i.Client)
	// Discovery at the other URL names the identifier; keys come from where it serves.
	ctx = oidc.InsecureIssuerURLContext(ctx, i.URL)
	algs := make([]string, 0, len(devoidc.SigningAlgorithms))
	for _, a := range devoidc.SigningAlgorithms {
		algs = append(algs, string(a))
	}
	for _, alg := range devoidc.SigningAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			kid, err := i.PublishKey(alg)
			require.NoError(t, err)
			// A verifier of its own: go-oidc's key set may answer a refresh right after the
			// previous one with that one's keys.
			provider, err := oidc.NewProvider(ctx, i.ServerURL)
			require.NoError(t, err)
			verifier := provider.Verifier(&oidc.Config{ClientID: "gatehouse", SupportedSigningAlgs: algs})
			tok, err := i.Sign(i.Claims("someone"), kid)
			require.NoError(t, err)
			idTok, err := verifier.Verify(ctx, tok)
			require.NoError(t, err)
			assert.Equal(t, "https://login.example.com", idTok.Issuer)
		})
	}
	assert.Equal(t, "rs256", strings.Split(i.PublicKeys()[0].KeyID, "-")[0], "published keys do not become the signer")
}
