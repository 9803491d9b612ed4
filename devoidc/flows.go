package devoidc

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Grant types of the token endpoint.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// Endpoint paths.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathKeys       = "/keys"
	PathAuth       = "/auth"
	PathToken      = "/token"
	PathDevice     = "/device"
	PathDeviceCode = "/device/code"
	// PathOtherDiscovery serves the discovery document too (Issuer.DiscoveryURL).
	PathOtherDiscovery = "/other/discovery"
)

const (
	codeTTL       = 2 * time.Minute
	deviceTTL     = 10 * time.Minute
	devicePolling = 1 // seconds between device-flow polls
)

type authCode struct {
	identity    Identity
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	expires     time.Time
}

type refreshGrant struct {
	identity Identity
	clientID string
	expires  time.Time
}

type deviceGrant struct {
	userCode string
	clientID string
	expires  time.Time
	identity *Identity
	denied   bool
	lastPoll time.Time
}

func (i *Issuer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathDiscovery, i.serveDiscovery)
	mux.HandleFunc("GET "+PathOtherDiscovery, i.serveDiscovery)
	mux.HandleFunc("GET "+PathKeys, i.serveJWKS)
	mux.HandleFunc("GET "+PathAuth, i.serveLoginPage)
	mux.HandleFunc("POST "+PathAuth, i.serveLogin)
	mux.HandleFunc("POST "+PathToken, i.serveToken)
	mux.HandleFunc("POST "+PathDeviceCode, i.serveDeviceCode)
	mux.HandleFunc("GET "+PathDevice, i.serveDevicePage)
	mux.HandleFunc("POST "+PathDevice, i.serveDeviceVerify)
	return securityHeaders(mux)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http://127.0.0.1:* http://localhost:* http://[::1]:* https:; frame-ancestors 'none'")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.ServerURL + PathKeys,
		"authorization_endpoint":                i.ServerURL + PathAuth,
		"token_endpoint":                        i.ServerURL + PathToken,
		"device_authorization_endpoint":         i.ServerURL + PathDeviceCode,
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{GrantAuthorizationCode, GrantRefreshToken, GrantDeviceCode},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "groups", "offline_access"},
		"claims_supported":                      []string{"sub", "name", "preferred_username", "email", "groups"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": SigningAlgorithms,
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksRequests.Add(1)
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: i.PublicKeys()})
}

func (i *Issuer) client(id string) (Client, bool) {
	for _, c := range i.o.Clients {
		if c.ID == id {
			return c, true
		}
	}
	return Client{}, false
}

// redirectAllowed matches uri against the client's redirect URIs; loopback URIs (http, or https
// for a local web app such as the console) match on any port (RFC 8252 section 7.3).
func redirectAllowed(c Client, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Fragment != "" {
		return false
	}
	for _, allowed := range c.RedirectURIs {
		if allowed == uri {
			return true
		}
		a, err := url.Parse(allowed)
		if err != nil || a.Scheme != u.Scheme || (a.Scheme != "http" && a.Scheme != "https") || !isLoopback(a.Hostname()) {
			continue
		}
		if a.Hostname() == u.Hostname() && a.Path == u.Path {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse dev login</title>
<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;color:#222}
button{display:block;width:100%;text-align:left;margin:.5em 0;padding:.8em;font-size:1em;border:1px solid #888;border-radius:6px;background:#f7f7f7;cursor:pointer}
small{color:#555}.warn{background:#fff4d6;padding:.6em;border-radius:6px}</style></head>
<body><h1>Gatehouse development login</h1>
<p class="warn">Development issuer: pick a demo identity. There are no passwords here; never use it for a real cluster.</p>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
{{if .UserCode}}<p><label>Code shown by your terminal: <input name="user_code" value="{{.UserCode}}" autocomplete="off"></label></p>{{end}}
{{range .Identities}}<button type="submit" name="identity" value="{{.Name}}"><b>{{.Name}}</b> <small>groups: {{range $j, $g := .Groups}}{{if $j}}, {{end}}{{$g}}{{end}}{{if .Description}} &mdash; {{.Description}}{{end}}</small></button>
{{end}}
<button type="submit" name="deny" value="1"><small>Cancel</small></button>
</form></body></html>
`))

type pageData struct {
	Action     string
	Hidden     map[string]string
	Identities []Identity
	UserCode   string
	Error      string
}

// authParams are the authorization request's parameters carried through the login form.
var authParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"}

func (i *Issuer) checkAuthRequest(q url.Values) (Client, string) {
	c, ok := i.client(q.Get("client_id"))
	if !ok {
		return c, "unknown client_id"
	}
	if !redirectAllowed(c, q.Get("redirect_uri")) {
		return c, "redirect_uri is not registered for this client"
	}
	return c, ""
}

func (i *Issuer) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if _, problem := i.checkAuthRequest(q); problem != "" {
		// Never redirect to an unchecked URI.
		http.Error(w, "invalid authorization request: "+problem, http.StatusBadRequest)
		return
	}
	hidden := map[string]string{}
	for _, k := range authParams {
		if v := q.Get(k); v != "" {
			hidden[k] = v
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginPage.Execute(w, pageData{Action: PathAuth, Hidden: hidden, Identities: i.Identities()})
}

func (i *Issuer) serveLogin(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	if _, problem := i.checkAuthRequest(f); problem != "" {
		http.Error(w, "invalid authorization request: "+problem, http.StatusBadRequest)
		return
	}
	redirect, _ := url.Parse(f.Get("redirect_uri"))
	back := func(params url.Values) {
		if s := f.Get("state"); s != "" {
			params.Set("state", s)
		}
		q := redirect.Query()
		for k, v := range params {
			q[k] = v
		}
		redirect.RawQuery = q.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	}
	switch {
	case f.Get("deny") != "":
		back(url.Values{"error": {"access_denied"}})
		return
	case f.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case f.Get("code_challenge") == "" || f.Get("code_challenge_method") != "S256":
		// Public clients only: PKCE with S256 is required.
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE (code_challenge_method=S256) is required"}})
		return
	}
	id, ok := i.identity(f.Get("identity"))
	if !ok {
		back(url.Values{"error": {"access_denied"}, "error_description": {"unknown identity"}})
		return
	}
	code := randomToken()
	i.mu.Lock()
	i.gc()
	i.codes[code] = &authCode{identity: id, clientID: f.Get("client_id"), redirectURI: f.Get("redirect_uri"),
		challenge: f.Get("code_challenge"), nonce: f.Get("nonce"), expires: i.clock.Now().Add(codeTTL)}
	i.mu.Unlock()
	i.log.Info("dev login", "identity", id.Name, "client", f.Get("client_id"))
	back(url.Values{"code": {code}})
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
}

func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if _, ok := i.client(clientID); !ok {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	now := i.clock.Now()
	switch f.Get("grant_type") {
	case GrantAuthorizationCode:
		i.mu.Lock()
		c, ok := i.codes[f.Get("code")]
		delete(i.codes, f.Get("code")) // single use, whatever happens next
		i.mu.Unlock()
		switch {
		case !ok || now.After(c.expires) || c.clientID != clientID:
			tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		case c.redirectURI != f.Get("redirect_uri"):
			tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		case !pkceMatches(c.challenge, f.Get("code_verifier")):
			tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge")
		default:
			i.issue(w, c.identity, clientID, c.nonce)
		}
	case GrantRefreshToken:
		i.mu.Lock()
		g, ok := i.refresh[f.Get("refresh_token")]
		delete(i.refresh, f.Get("refresh_token")) // rotated at every use
		i.mu.Unlock()
		if !ok || now.After(g.expires) || g.clientID != clientID {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired refresh token")
			return
		}
		i.issue(w, g.identity, clientID, "")
	case GrantDeviceCode:
		i.mu.Lock()
		g, ok := i.devices[f.Get("device_code")]
		var id *Identity
		var errCode string
		switch {
		case !ok || g.clientID != clientID:
			errCode = "invalid_grant"
		case now.After(g.expires):
			errCode = "expired_token"
			delete(i.devices, f.Get("device_code"))
		case g.denied:
			errCode = "access_denied"
			delete(i.devices, f.Get("device_code"))
		case g.identity == nil && !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < time.Duration(devicePolling)*time.Second/2:
			errCode = "slow_down"
		case g.identity == nil:
			errCode = "authorization_pending"
		default:
			id = g.identity
			delete(i.devices, f.Get("device_code"))
		}
		if ok {
			g.lastPoll = now
		}
		i.mu.Unlock()
		if id == nil {
			tokenError(w, http.StatusBadRequest, errCode, "")
			return
		}
		i.issue(w, *id, clientID, "")
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

func pkceMatches(challenge, verifier string) bool {
	if challenge == "" || len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func (i *Issuer) issue(w http.ResponseWriter, id Identity, clientID, nonce string) {
	tok, err := i.Sign(i.identityClaims(id, clientID, nonce))
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	refresh := randomToken()
	i.mu.Lock()
	i.refresh[refresh] = &refreshGrant{identity: id, clientID: clientID, expires: i.clock.Now().Add(i.o.RefreshTTL)}
	i.mu.Unlock()
	writeJSON(w, http.StatusOK, TokenResponse{AccessToken: tok, IDToken: tok, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int64(i.o.TokenTTL.Seconds())})
}

// DeviceCodeResponse is the device authorization endpoint's answer (RFC 8628).
type DeviceCodeResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

func (i *Issuer) serveDeviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	clientID := r.PostForm.Get("client_id")
	if _, ok := i.client(clientID); !ok {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	device := randomToken()
	user := userCode()
	i.mu.Lock()
	i.gc()
	i.devices[device] = &deviceGrant{userCode: user, clientID: clientID, expires: i.clock.Now().Add(deviceTTL)}
	i.mu.Unlock()
	writeJSON(w, http.StatusOK, DeviceCodeResponse{DeviceCode: device, UserCode: user, VerificationURI: i.ServerURL + PathDevice,
		VerificationURIComplete: i.ServerURL + PathDevice + "?user_code=" + url.QueryEscape(user), ExpiresIn: int64(deviceTTL.Seconds()), Interval: devicePolling})
}

func (i *Issuer) serveDevicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginPage.Execute(w, pageData{Action: PathDevice, Identities: i.Identities(), UserCode: r.URL.Query().Get("user_code") + " "})
}

func (i *Issuer) serveDeviceVerify(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	code := strings.ToUpper(strings.TrimSpace(r.PostForm.Get("user_code")))
	id, known := i.identity(r.PostForm.Get("identity"))
	deny := r.PostForm.Get("deny") != ""
	i.mu.Lock()
	var g *deviceGrant
	for _, d := range i.devices {
		if subtle.ConstantTimeCompare([]byte(d.userCode), []byte(code)) == 1 && i.clock.Now().Before(d.expires) && d.identity == nil && !d.denied {
			g = d
		}
	}
	if g != nil {
		if deny || !known {
			g.denied = true
		} else {
			g.identity = &id
		}
	}
	i.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	switch {
	case g == nil:
		w.WriteHeader(http.StatusBadRequest)
		_ = loginPage.Execute(w, pageData{Action: PathDevice, Identities: i.Identities(), UserCode: " ", Error: "That code is unknown or expired. Check your terminal."})
	case deny || !known:
		_, _ = w.Write([]byte("<!doctype html><p>Login cancelled. You can close this window.</p>"))
	default:
		i.log.Info("dev device login", "identity", id.Name, "client", g.clientID)
		_, _ = w.Write([]byte("<!doctype html><p>Logged in as " + template.HTMLEscapeString(id.Name) + ". Return to your terminal; you can close this window.</p>"))
	}
}

// gc drops expired codes and grants; the caller holds i.mu.
func (i *Issuer) gc() {
	now := i.clock.Now()
	for k, c := range i.codes {
		if now.After(c.expires) {
			delete(i.codes, k)
		}
	}
	for k, g := range i.refresh {
		if now.After(g.expires) {
			delete(i.refresh, k)
		}
	}
	for k, d := range i.devices {
		if now.After(d.expires) {
			delete(i.devices, k)
		}
	}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// userCode is eight letters from an alphabet without look-alikes, as XXXX-XXXX.
func userCode() string {
	const alphabet = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for n, c := range b {
		if n == 4 {
			out = append(out, '-')
		}
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func tokenError(w http.ResponseWriter, code int, errCode, desc string) {
	body := map[string]string{"error": errCode}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, code, body)
}
