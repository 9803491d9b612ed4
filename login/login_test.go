package login_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/devoidc"
	"github.com/gatehouse-dev/gatehouse/login"
)

func startIssuer(t *testing.T, ttl time.Duration) *devoidc.Issuer {
	t.Helper()
	i, err := devoidc.Start(devoidc.Options{TokenTTL: ttl, Identities: []devoidc.Identity{
		{Name: "alice", Groups: []string{"gatehouse:approvers"}},
		{Name: "bob", Groups: []string{"developers"}},
	}})
	require.NoError(t, err)
	t.Cleanup(i.Close)
	return i
}

// browser plays a person at the login page: it opens the URL, picks identity and follows the
// issuer's redirect to the loopback listener. It records the redirect it saw.
type browser struct {
	t        *testing.T
	issuer   *devoidc.Issuer
	identity string
	// before, when set, runs against the listener before the real redirect (an attacker's).
	before func(callback *url.URL)
	opened int
}

func (b *browser) open(authURL string) error {
	b.opened++
	go func() {
		hc := &http.Client{Transport: b.issuer.Client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Get(authURL)
		if err != nil {
			b.t.Errorf("open the login page: %v", err)
			return
		}
		resp.Body.Close()
		u, _ := url.Parse(authURL)
		form := u.Query()
		form.Set("identity", b.identity)
		resp, err = hc.PostForm(b.issuer.URL+devoidc.PathAuth, form)
		if err != nil {
			b.t.Errorf("log in: %v", err)
			return
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			b.t.Errorf("no redirect: %v", err)
			return
		}
		if b.before != nil {
			b.before(loc)
		}
		resp, err = http.Get(loc.String())
		if err != nil {
			b.t.Errorf("follow the redirect: %v", err)
			return
		}
		resp.Body.Close()
	}()
	return nil
}

func options(t *testing.T, i *devoidc.Issuer, b *browser) login.Options {
	return login.Options{Issuer: i.URL, IssuerCA: i.CAPEM, OpenBrowser: b.open, Prompt: io.Discard,
		CacheDir: filepath.Join(t.TempDir(), "credentials"), Timeout: 30 * time.Second}
}

func TestBrowserLoginAndCache(t *testing.T) {
	i := startIssuer(t, time.Hour)
	b := &browser{t: t, issuer: i, identity: "alice"}
	o := options(t, i, b)
	tok, err := login.Login(t.Context(), o)
	require.NoError(t, err)
	assert.Equal(t, "alice", tok.Subject)
	assert.NotEmpty(t, tok.RefreshToken)

	files, err := filepath.Glob(filepath.Join(o.CacheDir, "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	fi, err := os.Stat(files[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the token cache is the user's alone")
	di, err := os.Stat(o.CacheDir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	// kubectl's plugin call: the cached token, no new login.
	again, err := login.Credential(t.Context(), o, false)
	require.NoError(t, err)
	assert.Equal(t, tok.IDToken, again.IDToken)
	assert.Equal(t, 1, b.opened)

	// A cache file others can read is not used.
	require.NoError(t, os.Chmod(files[0], 0o644))
	_, err = login.Credential(t.Context(), o, false)
	require.ErrorIs(t, err, login.ErrLoginRequired)
}

func TestRefreshAndRelogin(t *testing.T) {
	// Tokens that expire within the minute the plugin keeps in reserve are refreshed at once.
	i := startIssuer(t, 30*time.Second)
	b := &browser{t: t, issuer: i, identity: "bob"}
	o := options(t, i, b)
	first, err := login.Login(t.Context(), o)
	require.NoError(t, err)

	refreshed, err := login.Credential(t.Context(), o, false)
	require.NoError(t, err, "refreshed without the person")
	assert.NotEqual(t, first.RefreshToken, refreshed.RefreshToken, "the refresh token rotates")
	assert.Equal(t, 1, b.opened)

	// The issuer forgets its refresh tokens (a restart): without a terminal the plugin says
	// what to run; with one it logs in again.
	i.Close()
	i2, err := devoidc.Start(devoidc.Options{Address: i.URL[len("https://"):], TokenTTL: time.Hour, Identities: []devoidc.Identity{{Name: "bob"}}})
	require.NoError(t, err)
	t.Cleanup(i2.Close)
	o.IssuerCA = i2.CAPEM
	b.issuer = i2
	_, err = login.Credential(t.Context(), o, false)
	require.ErrorIs(t, err, login.ErrLoginRequired)
	assert.Contains(t, err.Error(), "gatehouse login --issuer "+i.URL)
	tok, err := login.Credential(t.Context(), o, true)
	require.NoError(t, err)
	assert.Equal(t, "bob", tok.Subject)
	assert.Equal(t, 2, b.opened)
}

func TestForgedRedirectIsIgnored(t *testing.T) {
	i := startIssuer(t, time.Hour)
	b := &browser{t: t, issuer: i, identity: "alice"}
	var forged int
	b.before = func(callback *url.URL) {
		// Another page the person visits tries to complete the login with its own code.
		evil := *callback
		evil.RawQuery = url.Values{"code": {"attacker-code"}, "state": {"guessed"}}.Encode()
		resp, err := http.Get(evil.String())
		if err == nil {
			forged = resp.StatusCode
			resp.Body.Close()
		}
	}
	tok, err := login.Login(t.Context(), options(t, i, b))
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, forged)
	assert.Equal(t, "alice", tok.Subject, "the login completed with the issuer's own code")
}

func TestRefusedLogin(t *testing.T) {
	i := startIssuer(t, time.Hour)
	b := &browser{t: t, issuer: i, identity: "mallory"} // not an identity: the issuer refuses
	_, err := login.Login(t.Context(), options(t, i, b))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "access_denied")
}

func TestDeviceLogin(t *testing.T) {
	i := startIssuer(t, time.Hour)
	pr, pw := io.Pipe()
	o := login.Options{Issuer: i.URL, IssuerCA: i.CAPEM, Device: true, Prompt: pw, CacheDir: t.TempDir(), Timeout: 30 * time.Second}
	go func() {
		// The person reads the code in the terminal and enters it on another device.
		line, _ := bufio.NewReader(pr).ReadString('\n')
		code := regexp.MustCompile(`[A-Z]{4}-[A-Z]{4}`).FindString(line)
		resp, err := i.Client.PostForm(i.URL+devoidc.PathDevice, url.Values{"user_code": {code}, "identity": {"alice"}})
		if err == nil {
			resp.Body.Close()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tok, err := login.Login(ctx, o)
	_ = pw.Close()
	require.NoError(t, err)
	assert.Equal(t, "alice", tok.Subject)
}

func TestSessionServer(t *testing.T) {
	tests := []struct{ server, session, want string }{
		{"https://gh.example.com", "", "https://gh.example.com"},
		{"https://gh.example.com/", "fix-42", "https://gh.example.com/gatehouse/client/session=fix-42"},
		{"https://127.0.0.1:8443", "a,b=c/d", "https://127.0.0.1:8443/gatehouse/client/session=a%2Cb%3Dc%2Fd"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, login.SessionServer(tt.server, tt.session))
	}
}
