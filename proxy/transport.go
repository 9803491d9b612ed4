package proxy

import (
	"fmt"
	"net/http"

	"k8s.io/client-go/rest"
)

// newTransport returns the round tripper to kube-apiserver: client-go's transport for cfg
// (client certificates, tokens and exec plugins all work), with HTTP/2 for ordinary requests
// and a separate HTTP/1.1 transport for protocol upgrades (SPDY and WebSocket), which HTTP/2
// cannot carry.
//
// The HTTP/2 encoder keeps its dynamic header table, although each request's new Audit-ID
// takes an entry and evicts one: without the table every header goes as a literal that
// kube-apiserver must decode, which with a service-account token for credential costs the
// server more than it saves the proxy (BenchmarkUpstreamEncoderTable).
func newTransport(cfg *rest.Config) (http.RoundTripper, error) {
	normal, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream transport: %w", err)
	}
	h1 := rest.CopyConfig(cfg)
	h1.NextProtos = []string{"http/1.1"}
	upgrade, err := rest.TransportFor(h1)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream upgrade transport: %w", err)
	}
	return upgradeAware{normal: normal, upgrade: upgrade}, nil
}

type upgradeAware struct{ normal, upgrade http.RoundTripper }

func (t upgradeAware) RoundTrip(r *http.Request) (*http.Response, error) {
	if isUpgrade(r) {
		return t.upgrade.RoundTrip(r)
	}
	return t.normal.RoundTrip(r)
}
