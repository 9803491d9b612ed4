package serving

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelfSignedPEM(t *testing.T) {
	certPEM, keyPEM, err := SelfSignedPEM("gatehouse.local", "127.0.0.1")
	require.NoError(t, err)
	require.NotEmpty(t, keyPEM)
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.Equal(t, []string{"gatehouse.local"}, cert.DNSNames)
	require.Len(t, cert.IPAddresses, 1)
	assert.Equal(t, "127.0.0.1", cert.IPAddresses[0].String())
	require.NoError(t, cert.VerifyHostname("gatehouse.local"))
}

func TestTLSOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    TLSOptions
		ok   bool
	}{
		{"files", TLSOptions{CertFile: "c", KeyFile: "k"}, true},
		{"self-signed", TLSOptions{SelfSigned: true}, true},
		{"nothing", TLSOptions{}, false},
		{"cert without key", TLSOptions{CertFile: "c"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, tc.o.Validate() == nil)
		})
	}
}

func TestHealth(t *testing.T) {
	h := NewHealth(slog.New(slog.DiscardHandler))
	mux := http.NewServeMux()
	h.Install(mux)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Body)
		return rec.Code, string(body)
	}
	code, _ := get("/readyz")
	assert.Equal(t, http.StatusOK, code)

	h.AddReadyCheck("trail", func(context.Context) error { return errors.New("NATS is down: token=do-not-show") })
	code, body := get("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "trail")
	assert.NotContains(t, body, "do-not-show", "check details go to the log, not the response")
	code, _ = get("/healthz")
	assert.Equal(t, http.StatusOK, code, "liveness does not depend on readiness")
}
