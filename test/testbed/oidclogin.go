package testbed

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/devoidc"
)

// loginState is who Authorize signs in, chosen by the test.
type loginState struct {
	mu   sync.Mutex
	name string
	// wrongNonce makes the next Authorize ask for a nonce the client did not send.
	wrongNonce bool
}

// Login makes Authorize sign subject in with groups from now on: a demo identity of the issuer,
// chosen on its login page as a person would.
func (i *Issuer) Login(subject string, groups ...string) {
	i.SetIdentity(devoidc.Identity{Name: subject, Groups: groups})
	i.login.mu.Lock()
	defer i.login.mu.Unlock()
	i.login.name = subject
}

// LoginWithWrongNonce makes the next Authorize carry another nonce than the client's request:
// the ID token then holds a nonce the client never sent, like a token replayed from another
// login.
func (i *Issuer) LoginWithWrongNonce() {
	i.login.mu.Lock()
	defer i.login.mu.Unlock()
	i.login.wrongNonce = true
}

// Authorize completes the authorization request authURL (where a client redirected its user)
// on the issuer's login page, as the identity of Login, and returns where the issuer sends the
// browser next: the client's callback with the code and state.
func (i *Issuer) Authorize(authURL string) (*url.URL, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: authorization URL: %w", err)
	}
	i.login.mu.Lock()
	name, wrongNonce := i.login.name, i.login.wrongNonce
	i.login.wrongNonce = false
	i.login.mu.Unlock()
	if name == "" {
		return nil, fmt.Errorf("testbed: no login configured (Issuer.Login)")
	}
	form := u.Query()
	form.Set("identity", name)
	if wrongNonce {
		form.Set("nonce", "nonce-of-another-login")
	}
	// The login page posts its form back to the authorization endpoint.
	target := *u
	target.RawQuery = ""
	client := *i.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Post(target.String(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("testbed: log in: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("testbed: log in: the issuer answered %s", resp.Status)
	}
	return url.Parse(resp.Header.Get("Location"))
}
