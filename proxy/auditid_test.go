package proxy_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOneAuditID checks that an answer through the proxy carries one Audit-Id, the attempt's:
// kube-apiserver echoes the Audit-ID it was sent, and the proxy had set it on the answer before.
func TestOneAuditID(t *testing.T) {
	tok := token(t, "alice", nil)
	for _, tc := range []struct {
		name, path, tok string
		code            int
	}{
		{"forwarded", "/api/v1/namespaces/default/configmaps", tok, http.StatusOK},
		{"forwarded, an error upstream", "/api/v1/namespaces/default/configmaps/nothing-here", tok, http.StatusNotFound},
		{"refused by the proxy", "/api/v1/namespaces/default/configmaps", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tc.path, tc.tok, nil)
			require.Equal(t, tc.code, resp.StatusCode, string(body))
			ids := resp.Header.Values("Audit-Id")
			require.Len(t, ids, 1, "%q", ids)
			if tc.code != http.StatusUnauthorized {
				assert.NotEmpty(t, eventsFor(t, ids[0]), "kube-apiserver audited the request under the Audit-ID the client got")
			}
		})
	}
}
