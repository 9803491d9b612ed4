package approvals_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestAPIVisibility: an agent sees its own requests only; approvers see those they may decide.
func TestAPIVisibility(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	identities := map[string]trail.Identity{"agent": agent, "agent-2": {User: "agent-2", Groups: []string{"agents"}}, "alice": alice, "eve": eve}
	api := &approvals.API{Broker: b, Authenticate: func(r *http.Request) (trail.Identity, error) {
		id, ok := identities[r.Header.Get("X-Test-User")]
		if !ok {
			return trail.Identity{}, errors.New("unknown")
		}
		return id, nil
	}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	client := func(user string) *approvals.Client {
		return &approvals.Client{BaseURL: srv.URL, HTTP: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			r.Header.Set("X-Test-User", user)
			return http.DefaultTransport.RoundTrip(r)
		})}}
	}

	mine, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	other := spec(t, 1)
	other.Requester = identities["agent-2"]
	theirs, err := b.Create(ctx, other)
	require.NoError(t, err)

	ids := func(user string) map[string]bool {
		items, err := client(user).List(ctx, "")
		require.NoError(t, err)
		out := map[string]bool{}
		for _, r := range items {
			out[r.ID] = true
		}
		return out
	}
	assert.True(t, ids("agent")[mine.ID])
	assert.False(t, ids("agent")[theirs.ID], "an agent does not list others' requests")
	assert.True(t, ids("alice")[mine.ID] && ids("alice")[theirs.ID], "an approver lists what it may decide")
	assert.Empty(t, ids("eve")[mine.ID], "outsiders see nothing")

	_, err = client("agent").Get(ctx, theirs.ID)
	var apiErr *approvals.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.Code, "another's request is not found")
	got, err := client("agent").Get(ctx, mine.ID)
	require.NoError(t, err)
	assert.Equal(t, mine.ID, got.ID)

	// A watch leaves them out too.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(wctx, http.MethodGet, srv.URL+approvals.APIPrefix+"?watch=true", nil)
	require.NoError(t, err)
	req.Header.Set("X-Test-User", "agent")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	// A change to agent's own request marks the end of what the watch shows.
	_, err = b.Decide(ctx, mine.ID, alice, approvals.Deny, "end of test")
	require.NoError(t, err)
	for sc.Scan() {
		var ev approvals.WatchEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
		assert.NotEqual(t, theirs.ID, ev.Object.ID, "a watch does not show others' requests")
		if ev.Object.ID == mine.ID && ev.Object.State == approvals.StateDenied {
			return
		}
	}
	t.Fatalf("the watch ended before the agent's own change: %v", sc.Err())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
