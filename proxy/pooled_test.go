package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// TestPooledBodiesAcrossResponses reads lists of many sizes, one after another and at once,
// through one proxy, whose buffers pass from one response to the next: each client gets its
// own list masked, exactly as the masker masks it alone, and nothing of another.
func TestPooledBodiesAcrossResponses(t *testing.T) {
	bodies := []struct {
		resource string
		body     []byte
	}{
		{"secrets", maskingtest.SecretList(1 << 20)},
		{"configmaps", []byte(configMapJSON)},
		{"secrets", maskingtest.SecretList(10 << 10)},
		{"configmaps", maskingtest.ConfigMapList(300 << 10)},
		{"secrets", maskingtest.SecretList(2 << 20)},
		{"configmaps", maskingtest.ConfigMapList(3 << 10)},
	}
	m, err := masking.New(masking.Config{Key: []byte(testMaskingKey)})
	require.NoError(t, err)
	want := make([][]byte, len(bodies))
	for i, b := range bodies {
		want[i], _, err = m.Body("application/json", "", b.body, masking.Target{Resource: b.resource})
		require.NoError(t, err)
	}

	u := newUpstream(t)
	u.setRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		i, err := strconv.Atoi(r.URL.Query().Get("labelSelector"))
		if err != nil {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bodies[i].body)
		return true
	})
	u.discardRequests()
	srv := newStubProxy(t, u, nil)
	tok := token(t, "alice", nil)
	get := func(i int) error {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/namespaces/default/"+bodies[i].resource+"?labelSelector="+strconv.Itoa(i), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(want[i], got) {
			return fmt.Errorf("response %d: status %d, %d bytes, not the %d bytes of its list masked alone", i, resp.StatusCode, len(got), len(want[i]))
		}
		return nil
	}
	for round := range 3 {
		for i := range bodies {
			require.NoError(t, get((i+round)%len(bodies)))
		}
	}
	errs := make(chan error, 4*len(bodies))
	for range 4 {
		for i := range bodies {
			go func() { errs <- get(i) }()
		}
	}
	for range 4 * len(bodies) {
		require.NoError(t, <-errs)
	}
}
