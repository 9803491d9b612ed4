package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// errNoBearer is returned for an API call without a usable bearer token.
var errNoBearer = errors.New("console: the approvals API needs a bearer token")

// BearerAuthenticator authenticates approvals API calls by their bearer token, as the proxy
// authenticates Kubernetes API calls. The session cookie never authenticates the API: a page
// in the approver's browser cannot call it.
func BearerAuthenticator(a TokenAuthenticator) func(*http.Request) (trail.Identity, error) {
	return func(r *http.Request) (trail.Identity, error) {
		h := r.Header.Values("Authorization")
		if len(h) != 1 {
			return trail.Identity{}, errNoBearer
		}
		scheme, token, ok := strings.Cut(h[0], " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return trail.Identity{}, errNoBearer
		}
		id, err := a.AuthenticateToken(r.Context(), token)
		if err != nil {
			return trail.Identity{}, err
		}
		return id.Identity, nil
	}
}
