package proxy_test

import (
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// BenchmarkUpstreamEncoderTable weighs the HPACK dynamic table of the proxy's HTTP/2 encoder
// towards kube-apiserver. Every request carries a new Audit-Id, so the encoder inserts one entry
// and evicts the oldest per request (and, every few dozen requests, re-sends the evicted steady
// headers, the proxy's credential among them). Turning the table off
// (http.HTTP2Config.MaxEncoderHeaderTableSize = 1) spares the proxy that work but sends every
// header as a literal the server must Huffman-decode and copy, each request. The cases send the
// proxy's headers for a small GET with a short credential and with one the size of a
// service-account token, to an in-process HTTP/2 server (Go's, as kube-apiserver's). cpu-ns/op is
// client and server together; `-cpuprofile` and `go tool pprof -top -cum` split them
// (x/net's clientStream.doRequest is the client's encoding, http2serverConn.serve the server's
// decoding).
func BenchmarkUpstreamEncoderTable(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Audit-Id", r.Header.Get("Audit-Id"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, configMapJSON)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	for _, tc := range []struct {
		name       string
		tableSize  int
		credential int
	}{
		{"credential=26B/baseline=table-default", 0, 26},
		{"credential=26B/table-off", 1, 26},
		{"credential=1KB/baseline=table-default", 0, 1000},
		{"credential=1KB/table-off", 1, 1000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := &rest.Config{
				Host:            srv.URL,
				BearerToken:     strings.Repeat("x", tc.credential),
				TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})},
				// A Proxy makes client-go build a transport of this config's own (not cached), so
				// setting its HTTP/2 configuration changes no other client's.
				Proxy: http.ProxyFromEnvironment,
				WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
					if t, ok := rt.(*http.Transport); ok && tc.tableSize != 0 {
						t.HTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: tc.tableSize}
					}
					return rt
				},
			}
			rt, err := rest.TransportFor(cfg)
			if err != nil {
				b.Fatal(err)
			}
			do := func() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/configmaps/settings", nil)
				h := req.Header
				h.Set("Accept", "application/json")
				h.Set("User-Agent", "kubectl/v1.36.3 (linux/amd64) kubernetes/0123456")
				h.Set("Impersonate-User", "oidc:alice")
				h.Add("Impersonate-Group", "oidc:agents")
				h.Add("Impersonate-Group", "system:authenticated")
				h.Set("Impersonate-Uid", "uid-alice")
				h.Set("Impersonate-Extra-gatehouse.dev%2Fsession-id", "t-0123456789abcdef0123")
				h.Set("Impersonate-Extra-gatehouse.dev%2Fissuer", "https://issuer.example.com")
				h.Set("Impersonate-Extra-gatehouse.dev%2Fsubject", "alice")
				h.Set("Impersonate-Extra-gatehouse.dev%2Fclient", "kubectl/v1.36.3")
				h.Set("Audit-Id", trail.NewID())
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			for range 100 { // the connection, and a full table
				do()
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for b.Loop() {
				do()
			}
			reportCPU(b, cpu0)
		})
	}
}
