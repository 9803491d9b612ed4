package e2e

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/test/testbed"
)

// TestAuditIntakeRequiresClientCertificate posts a forged audit batch to the deployed intake
// as anyone who reaches it would: without a client certificate, and with one from another CA.
// The intake refuses both during the TLS handshake; kube-apiserver's own certificate is what
// every other test's audit events come with.
func TestAuditIntakeRequiresClientCertificate(t *testing.T) {
	other, err := testbed.NewPKI(t.TempDir())
	require.NoError(t, err)
	forged := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"level":"Metadata","auditID":"forged-1","stage":"ResponseComplete","verb":"get","user":{"username":"nobody"}}]}`
	for name, certs := range map[string][]tls.Certificate{"no certificate": nil, "another CA's certificate": {other.Client}} {
		t.Run(name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: bed.enricherPKI.Pool, Certificates: certs, MinVersion: tls.VersionTLS12,
			}}}
			req, err := http.NewRequest(http.MethodPost, bed.enricherURL, strings.NewReader(forged))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			require.Error(t, err, "the intake answered %v", resp)
		})
	}
	t.Run("kube-apiserver's certificate", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: bed.enricherPKI.ClientTLS()}}
		req, err := http.NewRequest(http.MethodPost, bed.enricherURL, strings.NewReader(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}
