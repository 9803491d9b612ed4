package proxy

import (
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"k8s.io/apiserver/pkg/endpoints/request"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// bearerToken returns the client's bearer token: from the Authorization header or, for
// WebSocket clients that cannot set headers, from the base64url.bearer.authorization.k8s.io.*
// subprotocol as kube-apiserver accepts it.
func bearerToken(r *http.Request) (string, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return "", errors.New("authorization is not a bearer token")
		}
		return strings.TrimSpace(token), nil
	}
	for _, p := range webSocketProtocols(r.Header) {
		if enc, ok := strings.CutPrefix(p, wsTokenPrefix); ok {
			b, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil || len(b) == 0 {
				return "", errors.New("malformed WebSocket bearer token")
			}
			return string(b), nil
		}
	}
	return "", errors.New("no bearer token")
}

const wsTokenPrefix = "base64url.bearer.authorization.k8s.io."

func webSocketProtocols(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// stripTokenProtocol removes the token subprotocol from an outbound request, upgrade or not: the
// proxy's own credential authenticates upstream, and a token never leaves the proxy.
func stripTokenProtocol(h http.Header) {
	protos := webSocketProtocols(h)
	if len(protos) == 0 {
		return
	}
	keep := protos[:0]
	for _, p := range protos {
		if !strings.HasPrefix(p, wsTokenPrefix) {
			keep = append(keep, p)
		}
	}
	h.Del("Sec-Websocket-Protocol")
	if len(keep) > 0 {
		h.Set("Sec-Websocket-Protocol", strings.Join(keep, ", "))
	}
}

// impersonationHeader reports the first header that asks kube-apiserver to impersonate, in any
// case and with '_' for '-' (some servers treat them alike), or named in Connection (which
// would make a proxy drop a header of the same name).
func impersonationHeader(h http.Header) (string, bool) {
	for name, vs := range h {
		if isImpersonation(name) {
			return name, true
		}
		if strings.EqualFold(name, "Connection") {
			for _, v := range vs {
				for _, tok := range strings.Split(v, ",") {
					if isImpersonation(strings.TrimSpace(tok)) {
						return "Connection: " + strings.TrimSpace(tok), true
					}
				}
			}
		}
	}
	return "", false
}

func isImpersonation(name string) bool {
	// strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), prefix), without
	// allocating for ASCII names: it runs for every header of every request. Outside ASCII some
	// characters lower to ASCII letters (U+0130 to i): such names take the long way.
	const prefix = "impersonate-"
	for i := range len(name) {
		if name[i] >= utf8.RuneSelf {
			return strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), prefix)
		}
	}
	if len(name) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// forwardedHeaders are the client headers the proxy passes to kube-apiserver: content
// negotiation, the client's name, and what protocol upgrades need. Every other client header is
// dropped, so no credential, identity assertion (Impersonate-*, X-Remote-*), Audit-ID or address
// (X-Forwarded-For, X-Real-Ip, Forwarded, True-Client-Ip, X-Client-Ip, ...) a client sends can
// reach it: kube-apiserver takes the first address of X-Forwarded-For or X-Real-Ip as a request's
// source IP in its audit log.
var forwardedHeaders = map[string]bool{
	"Accept": true, "Accept-Encoding": true, "Content-Type": true, "Content-Encoding": true,
	"User-Agent": true, "Kubectl-Command": true, "Kubectl-Session": true,
	// Upgrades (exec, attach, port-forward): SPDY and WebSocket. kube-apiserver's WebSocket
	// watches refuse a handshake without an Origin.
	"Connection": true, "Upgrade": true, "Te": true, "X-Stream-Protocol-Version": true,
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true, "Sec-Websocket-Protocol": true,
	"Sec-Websocket-Extensions": true, "Origin": true,
}

// forwarded reports whether a client header (by its canonical name) is passed to kube-apiserver.
func forwarded(name string) bool { return forwardedHeaders[name] }

// extraHeader returns the Impersonate-Extra header name for key, escaped as client-go does.
func extraHeader(key string) string {
	// The extras the proxy sets on every request, escaped (TestExtraHeader checks them).
	switch key {
	case identity.ExtraSessionID:
		return "Impersonate-Extra-gatehouse.dev%2Fsession-id"
	case identity.ExtraIssuer:
		return "Impersonate-Extra-gatehouse.dev%2Fissuer"
	case identity.ExtraSubject:
		return "Impersonate-Extra-gatehouse.dev%2Fsubject"
	case identity.ExtraClient:
		return "Impersonate-Extra-gatehouse.dev%2Fclient"
	}
	return "Impersonate-Extra-" + url.PathEscape(key)
}

// gatehouseExtraHeaders are the canonical header names (as http.Header.Set writes them) of the
// extras the proxy sets on every request, computed once.
var gatehouseExtraHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		identity.ExtraSessionID, identity.ExtraIssuer, identity.ExtraSubject, identity.ExtraClient,
		identity.ExtraHold, identity.ExtraReason, identity.ExtraApprovalID,
	} {
		m[k] = http.CanonicalHeaderKey(extraHeader(k))
	}
	return m
}()

// canonicalExtraHeader is http.CanonicalHeaderKey(extraHeader(key)).
func canonicalExtraHeader(key string) string {
	if name, ok := gatehouseExtraHeaders[key]; ok {
		return name
	}
	return http.CanonicalHeaderKey(extraHeader(key))
}

// clientName shortens a User-Agent to its product: "kubectl/v1.36.3 (linux/amd64) ..." is
// "kubectl/v1.36.3".
func clientName(ua string) string {
	name, _, _ := strings.Cut(ua, " ")
	return truncate(name, 64)
}

// jsonOnly keeps the JSON media types of an Accept header (tables included) and drops protobuf
// and CBOR, which cannot be masked structurally.
func jsonOnly(accept string) string {
	if accept == "" {
		// What the loop below makes of it, without splitting: most clients send no Accept.
		return "application/json"
	}
	var keep []string
	for _, part := range strings.Split(accept, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, _, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		switch {
		case mt == "application/json", mt == "*/*", mt == "application/*", strings.HasPrefix(mt, "text/"):
			keep = append(keep, part)
		}
	}
	if len(keep) == 0 {
		return "application/json"
	}
	return strings.Join(keep, ",")
}

func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// isStream reports a response that is masked as it passes instead of as a whole: watches and
// followed logs.
func isStream(info *request.RequestInfo, resp *http.Response) bool {
	if info.Verb == "watch" {
		return true
	}
	// A URL without a query needs no parsing (Query would return an empty map).
	if resp.Request.URL.RawQuery != "" {
		q := resp.Request.URL.Query()
		if info.Subresource == "log" && q.Get("follow") == "true" {
			return true
		}
		if q.Get("watch") == "true" || q.Get("watch") == "1" {
			return true
		}
	}
	return strings.Contains(resp.Header.Get("Content-Type"), "stream=watch")
}
