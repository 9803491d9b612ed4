package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/authn"
)

// impersonationRequest reads a client's Impersonate-* headers. Only the canonical spellings
// are read; any other spelling has already been refused.
func impersonationRequest(h http.Header) (authn.ImpersonationRequest, error) {
	as := authn.ImpersonationRequest{User: h.Get("Impersonate-User"), Groups: h.Values("Impersonate-Group"), UID: h.Get("Impersonate-Uid")}
	for name, vs := range h {
		if k, ok := strings.CutPrefix(name, "Impersonate-Extra-"); ok {
			key, err := url.PathUnescape(strings.ToLower(k))
			if err != nil {
				return as, fmt.Errorf("malformed impersonation extra %q", name)
			}
			if as.Extra == nil {
				as.Extra = map[string][]string{}
			}
			as.Extra[key] = append(as.Extra[key], vs...)
		}
	}
	if as.User == "" {
		return as, errors.New("an Impersonate-User header is required with any other Impersonate-* header")
	}
	for k := range as.Extra {
		if strings.HasPrefix(k, "gatehouse.dev/") {
			return as, fmt.Errorf("the extra %q is Gatehouse's own", k)
		}
	}
	return as, nil
}

// onlyCanonical reports whether every impersonation header is spelled as Go canonicalises the
// names kube-apiserver reads; a client smuggling another spelling is refused outright.
func onlyCanonical(h http.Header) (string, bool) {
	for name := range h {
		if !isImpersonation(name) {
			continue
		}
		switch {
		case name == "Impersonate-User", name == "Impersonate-Group", name == "Impersonate-Uid":
		case strings.HasPrefix(name, "Impersonate-Extra-"):
		default:
			return name, false
		}
	}
	for _, v := range h.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if isImpersonation(strings.TrimSpace(tok)) {
				return "Connection: " + strings.TrimSpace(tok), false
			}
		}
	}
	return "", true
}
