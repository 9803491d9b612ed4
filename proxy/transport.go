package proxy

import (
	"fmt"
	"net/http"
	"sync/atomic"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// newTransport returns the round tripper to kube-apiserver: client-go's transport for cfg
// (client certificates, tokens and exec plugins all work), with HTTP/2 for ordinary requests
// and a separate HTTP/1.1 transport for protocol upgrades (SPDY and WebSocket), which HTTP/2
// cannot carry. When cfg's credential is a bearer token, it returns as well the bearerAuth that
// adds it to the ordinary requests (nil otherwise): the proxy sets the header itself on the
// requests it builds (rewrite), which spares bearerAuth the copy of the request.
//
// The HTTP/2 encoder keeps its dynamic header table, although each request's new Audit-ID
// takes an entry and evicts one: without the table every header goes as a literal that
// kube-apiserver must decode, which with a service-account token for credential costs the
// server more than it saves the proxy (BenchmarkUpstreamEncoderTable).
func newTransport(cfg *rest.Config) (http.RoundTripper, *bearerAuth, error) {
	normal, err := transportFor(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: upstream transport: %w", err)
	}
	h1 := rest.CopyConfig(cfg)
	h1.NextProtos = []string{"http/1.1"}
	upgrade, err := transportFor(h1)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy: upstream upgrade transport: %w", err)
	}
	credential, _ := normal.(*bearerAuth)
	return upgradeAware{normal: normal, upgrade: upgrade}, credential, nil
}

// transportFor is rest.TransportFor(cfg), except that a bearer token (cfg.BearerToken, or
// cfg.BearerTokenFile re-read as client-go re-reads it) is added by bearerAuth instead of
// client-go's wrapper, which copies every header of every request, value by value, to add it.
// Any other kind of credential (basic, exec plugin, auth provider) is left to client-go whole.
func transportFor(cfg *rest.Config) (http.RoundTripper, error) {
	token := cfg.BearerToken != "" || cfg.BearerTokenFile != ""
	if !token || cfg.Username != "" || cfg.Password != "" || cfg.ExecProvider != nil || cfg.AuthProvider != nil {
		return rest.TransportFor(cfg)
	}
	b := &bearerAuth{}
	b.value.Store(&bearerValue{})
	b.bearer = cfg.BearerToken
	if cfg.BearerTokenFile != "" {
		src := transport.NewCachedFileTokenSource(cfg.BearerTokenFile)
		b.source = func() (string, error) {
			tok, err := src.Token()
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		}
		if b.bearer == "" {
			tok, err := b.source()
			if err != nil {
				return nil, fmt.Errorf("reading the bearer token file: %w", err)
			}
			b.bearer = tok
		}
	}
	bare := rest.CopyConfig(cfg)
	bare.BearerToken, bare.BearerTokenFile = "", ""
	next, err := rest.TransportFor(bare)
	if err != nil {
		return nil, err
	}
	b.next = next
	return b, nil
}

// bearerAuth adds "Authorization: Bearer <token>" to each request that has no Authorization
// header, as client-go's bearer token round tripper does (the token re-read from its file,
// falling back to the first one read when the file cannot be read), on a copy of the request
// whose header map is new but shares the values of the original's: nothing below it changes a
// header's values.
type bearerAuth struct {
	bearer string
	source func() (string, error) // nil for a static token
	next   http.RoundTripper
	// value caches the header value for the token last used.
	value atomic.Pointer[bearerValue]
}

type bearerValue struct{ token, header string }

func (b *bearerAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		return b.next.RoundTrip(req)
	}
	out := *req
	out.Header = make(http.Header, len(req.Header)+1)
	for k, vs := range req.Header {
		out.Header[k] = vs
	}
	out.Header["Authorization"] = []string{b.header()}
	return b.next.RoundTrip(&out)
}

// header returns the Authorization header for the token to use now.
func (b *bearerAuth) header() string {
	token := b.bearer
	if b.source != nil {
		if tok, err := b.source(); err == nil {
			token = tok
		}
	}
	v := b.value.Load()
	if v.token != token || v.header == "" {
		v = &bearerValue{token: token, header: "Bearer " + token}
		b.value.Store(v)
	}
	return v.header
}

// WrappedRoundTripper returns the round tripper bearerAuth adds the token for, as client-go's
// wrappers do, for the helpers that look through them (utilnet.CloseIdleConnectionsFor).
func (b *bearerAuth) WrappedRoundTripper() http.RoundTripper { return b.next }

type upgradeAware struct{ normal, upgrade http.RoundTripper }

func (t upgradeAware) RoundTrip(r *http.Request) (*http.Response, error) {
	if isUpgrade(r) {
		return t.upgrade.RoundTrip(r)
	}
	return t.normal.RoundTrip(r)
}
