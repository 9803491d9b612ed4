package testbed

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// The issuer's authorization endpoint logs in whoever the test names with Login (there is no
// password form), and its token endpoint checks the code, redirect URI, client and PKCE verifier
// as a real provider does before it signs the ID token.

type authCode struct {
	clientID, redirectURI, challenge, nonce string
	claims                                  Claims
	expires                                 time.Time
}

type loginState struct {
	mu    sync.Mutex
	who   Claims
	codes map[string]*authCode
	// wrongNonce makes the next ID token carry a nonce the client did not send.
	wrongNonce bool
}

// Login makes the authorization endpoint log in subject with groups from now on.
func (i *Issuer) Login(subject string, groups ...string) {
	c := i.Claims(subject)
	c["groups"] = groups
	i.login.mu.Lock()
	defer i.login.mu.Unlock()
	i.login.who = c
}

// LoginWithWrongNonce makes the next ID token carry a nonce other than the one requested: a
// token replayed from another login.
func (i *Issuer) LoginWithWrongNonce() {
	i.login.mu.Lock()
	defer i.login.mu.Unlock()
	i.login.wrongNonce = true
}

func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("response_type") != "code" || q.Get("client_id") == "" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "invalid authorization request", http.StatusBadRequest)
		return
	}
	i.login.mu.Lock()
	who := i.login.who
	if i.login.codes == nil {
		i.login.codes = map[string]*authCode{}
	}
	code := randomID()
	i.login.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), claims: who, expires: time.Now().Add(time.Minute)}
	i.login.mu.Unlock()
	if who == nil {
		http.Error(w, "testbed issuer: no login configured (Issuer.Login)", http.StatusForbidden)
		return
	}
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tokenError := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": msg})
	}
	clientID := r.PostForm.Get("client_id")
	if u, _, ok := r.BasicAuth(); ok {
		clientID = u
	}
	i.login.mu.Lock()
	c := i.login.codes[r.PostForm.Get("code")]
	delete(i.login.codes, r.PostForm.Get("code")) // single use
	wrongNonce := i.login.wrongNonce
	i.login.wrongNonce = false
	i.login.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case r.PostForm.Get("grant_type") != "authorization_code":
		tokenError("unsupported grant type")
		return
	case c == nil || time.Now().After(c.expires):
		tokenError("unknown or used code")
		return
	case c.clientID != clientID || c.redirectURI != r.PostForm.Get("redirect_uri"):
		tokenError("code issued to another client or redirect URI")
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		tokenError("PKCE verifier does not match the challenge")
		return
	}
	claims := Claims{}
	for k, v := range c.claims {
		claims[k] = v
	}
	claims["aud"] = c.clientID
	claims["nonce"] = c.nonce
	if wrongNonce {
		claims["nonce"] = "another-login"
	}
	idToken, err := i.Sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": randomID(), "token_type": "Bearer", "expires_in": 3600, "id_token": idToken,
	})
}

func randomID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
