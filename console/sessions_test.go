package console

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/recording"
	"github.com/gatehouse-dev/gatehouse/sessionlog"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The session pages' tests read a session log held in memory: what the console decides (who
// sees what, what a page shows, what the player gets) is tested here; sessionlog's tests read
// the real store, and the end-to-end tests run both against ClickHouse in a browser.

// memLog is a session log in memory. It applies a Filter as sessionlog.Store does.
type memLog struct {
	mu         sync.Mutex
	sessions   []sessionlog.Session
	timelines  map[string][]sessionlog.Entry
	recordings map[string]*sessionlog.Recording
	filters    []sessionlog.Filter
	err        error
}

var _ SessionLog = (*memLog)(nil)

func (m *memLog) List(_ context.Context, f sessionlog.Filter) ([]sessionlog.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.filters = append(m.filters, f)
	if m.err != nil {
		return nil, m.err
	}
	var out []sessionlog.Session
	for _, s := range m.sessions {
		if (f.User != "" && s.User != f.User) || (len(f.IDs) > 0 && !slices.Contains(f.IDs, s.ID)) ||
			(f.WithRecordings && s.Recordings == 0) || (!f.Since.IsZero() && s.LastActivity.Before(f.Since)) ||
			(!f.Until.IsZero() && !s.Started.Before(f.Until)) {
			continue
		}
		out = append(out, s)
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (m *memLog) Session(ctx context.Context, id string) (*sessionlog.Session, error) {
	list, err := m.List(ctx, sessionlog.Filter{IDs: []string{id}})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, sessionlog.ErrNotFound
	}
	return &list[0], nil
}

func (m *memLog) Timeline(_ context.Context, id string) ([]sessionlog.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.timelines[id], m.err
}

func (m *memLog) Recording(_ context.Context, id string) (*sessionlog.Recording, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	r, ok := m.recordings[id]
	if !ok {
		return nil, sessionlog.ErrNotFound
	}
	return r, nil
}

func (m *memLog) lastFilter() sessionlog.Filter {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.filters[len(m.filters)-1]
}

// testCast is a terminal session as the proxy records it: the Secret's value was masked before
// it was stored.
const testCast = `{"version":3,"term":{"cols":80,"rows":24},"timestamp":1767225600,"command":"sh"}
[0.100000, "o", "$ "]
[0.500000, "i", "cat /var/run/api/token\r"]
[0.050000, "o", "cat /var/run/api/token\r\ngatehouse:masked:4f2a9c\r\n$ "]
[0.200000, "e", "warning\r\n"]
[0.400000, "i", "exit 3\r"]
[0.050000, "o", "exit 3\r\n"]
[0.010000, "x", "3"]
`

// chunked splits data into a recording's sealed chunks of at most n bytes.
func chunked(id, session, user, data string, n int, final bool) *sessionlog.Recording {
	r := &sessionlog.Recording{ID: id}
	prev := ""
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seq := 0; len(data) > 0; seq++ {
		part := data[:min(n, len(data))]
		data = data[len(part):]
		c := &trail.Recording{RecordingID: id, SessionID: session, AuditID: id, Seq: uint32(seq), Format: trail.FormatAsciicast,
			Subresource: "exec", Namespace: "ns", Pod: "shell", Container: "main", Command: []string{"sh"}, User: user,
			Start: start, Data: part, Final: final && len(data) == 0}
		c.Seal(prev)
		prev = c.Hash
		r.Chunks = append(r.Chunks, c)
	}
	return r
}

// sessionsFixture is a session log with two sessions of two users, each with an exec recording,
// and an approval request made in the first.
type sessionsFixture struct {
	log              *memLog
	agent, other     string
	agentRec, others string
	request          string
}

func newSessionsFixture(t *testing.T) *sessionsFixture {
	t.Helper()
	suffix := strings.ToLower(randomString(6))
	f := &sessionsFixture{agent: "s-agent-" + suffix, other: "s-other-" + suffix, agentRec: "rec-agent-" + suffix, others: "rec-other-" + suffix}
	at := time.Now().UTC().Add(-time.Hour)
	f.log = &memLog{timelines: map[string][]sessionlog.Entry{}, recordings: map[string]*sessionlog.Recording{
		f.agentRec: chunked(f.agentRec, f.agent, "oidc:agent", testCast, 40, true),
		f.others:   chunked(f.others, f.other, "oidc:other", testCast, 1000, true),
	}}
	f.log.sessions = []sessionlog.Session{
		{ID: f.agent, Label: "fix-build", User: "oidc:agent", Client: "kubectl/v1.36.3", Started: at, LastActivity: at.Add(time.Minute), Requests: 3, Recordings: 1},
		{ID: f.other, User: "oidc:other", Started: at, LastActivity: at.Add(2 * time.Minute), Requests: 1, Recordings: 1},
	}
	req := createRequest(t, "sessions-"+suffix, time.Hour, 1)
	f.request = req.ID
	// createRequest makes the request in session "s-<name>": the agent's session here.
	f.agent = req.SessionID
	f.log.sessions[0].ID = f.agent
	for _, c := range f.log.recordings[f.agentRec].Chunks {
		c.SessionID = f.agent
	}
	f.log.recordings[f.agentRec] = rechain(f.log.recordings[f.agentRec])
	agentSum := f.log.recordings[f.agentRec].Summary()
	otherSum := f.log.recordings[f.others].Summary()
	f.log.timelines[f.agent] = []sessionlog.Entry{
		{Time: at, AuditID: "a-1", Route: "gateway", User: "oidc:agent", Verb: "get", Resource: "secrets", Namespace: "ns", Name: "api", Code: 200, Masked: 1,
			MaskedBy: map[string]uint32{"secret": 1}},
		{Time: at.Add(time.Second), AuditID: "a-2", Route: "gateway-only", User: "oidc:agent", Verb: "create", Resource: "clusterrolebindings", Name: "admin", Code: 403,
			Message: "held for approval", Decision: &sessionlog.Decision{Component: "webhook", Policy: "gatehouse-approvals", Rule: "cluster-admin-bindings", Action: "requireApproval"},
			Approval: &sessionlog.Approval{ID: f.request, State: "Pending"}, Payload: "ClusterRoleBinding admin: roleRef{kind,name} subjects"},
		{Time: at.Add(2 * time.Second), AuditID: f.agentRec, Route: "gateway", User: "oidc:agent", Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "ns", Name: "shell",
			Code: 101, Recording: &agentSum},
	}
	f.log.timelines[f.other] = []sessionlog.Entry{{Time: at, AuditID: f.others, Route: "gateway", User: "oidc:other", Verb: "create", Resource: "pods",
		Subresource: "exec", Namespace: "ns", Name: "shell", Code: 101, Recording: &otherSum}}
	return f
}

// rechain seals a recording's chunks again after a change.
func rechain(r *sessionlog.Recording) *sessionlog.Recording {
	prev := ""
	for _, c := range r.Chunks {
		c.Seal(prev)
		prev = c.Hash
	}
	return r
}

func (f *sessionsFixture) harness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, func(o *Options) {
		o.Sessions = f.log
		o.ViewerGroups = []string{"gatehouse:viewers"}
	})
	require.Eventually(t, func() bool { it, _ := h.srv.hub.get(f.request); return it != nil }, 10*time.Second, 10*time.Millisecond)
	return h
}

// TestWhoSeesWhichSession: the viewer groups see every session; others see their own and those
// of the approval requests they may see, and nothing else - not by ID, not through a session
// they may see, not in the list. A session that may not be seen looks like one that does not
// exist.
func TestWhoSeesWhichSession(t *testing.T) {
	f := newSessionsFixture(t)
	h := f.harness(t)
	paths := func(session, rec string) []string {
		base := "/sessions/" + session
		return []string{base, base + "/recordings/" + rec, base + "/recordings/" + rec + "/cast"}
	}
	type login struct {
		subject string
		groups  []string
	}
	for _, tc := range []struct {
		name     string
		who      login
		agent    bool
		other    bool
		listed   []string
		unlisted []string
	}{
		{"a viewer sees every session", login{"auditor", []string{"gatehouse:viewers"}}, true, true, []string{f.agent, f.other}, nil},
		{"an approver sees the session of a request", login{"approver-1", []string{approverGroup}}, true, false, []string{f.agent}, []string{f.other}},
		{"the requester sees their own session", login{"agent", []string{"agents"}}, true, false, []string{f.agent}, []string{f.other}},
		{"another user sees their own only", login{"other", []string{"agents"}}, false, true, []string{f.other}, []string{f.agent}},
		{"an approver of other groups sees nothing", login{"approver-db", []string{"gatehouse:db-approvers"}}, false, false, nil, []string{f.agent, f.other}},
		{"an outsider sees nothing", login{"outsider", nil}, false, false, nil, []string{f.agent, f.other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.login(t, tc.who.subject, tc.who.groups...)
			for _, s := range []struct {
				session, rec string
				want         bool
			}{{f.agent, f.agentRec, tc.agent}, {f.other, f.others, tc.other}} {
				for _, p := range paths(s.session, s.rec) {
					code, body := h.get(t, c, p)
					if s.want {
						assert.Equal(t, http.StatusOK, code, p)
					} else {
						assert.Equal(t, http.StatusNotFound, code, p)
						for _, leak := range []string{"gatehouse:masked", "fix-build", "Terminal recording", "version"} {
							assert.NotContains(t, body, leak, p)
						}
					}
				}
			}
			// A recording of another session, through a session that may be seen.
			for _, p := range []string{"/sessions/" + f.agent + "/recordings/" + f.others, "/sessions/" + f.agent + "/recordings/" + f.others + "/cast",
				"/sessions/" + f.other + "/recordings/" + f.agentRec + "/cast"} {
				code, _ := h.get(t, c, p)
				assert.Equal(t, http.StatusNotFound, code, p)
			}
			// A session that does not exist answers as one that may not be seen.
			code, body := h.get(t, c, "/sessions/s-no-such-session")
			assert.Equal(t, http.StatusNotFound, code)
			assert.Contains(t, body, "There is no session s-no-such-session that you may see.")

			code, list := h.get(t, c, "/sessions")
			require.Equal(t, http.StatusOK, code)
			for _, id := range tc.listed {
				assert.Contains(t, list, `id="session-`+id+`"`)
			}
			for _, id := range tc.unlisted {
				assert.NotContains(t, list, `id="session-`+id+`"`)
			}
			// Asking for another user's sessions does not widen the list.
			_, list = h.get(t, c, "/sessions?user=oidc:other")
			assert.Equal(t, tc.other, strings.Contains(list, `id="session-`+f.other+`"`))
		})
	}
}

// TestSessionPageShowsTheTimeline: every call with its identity, decision, approval, outcome,
// what was masked and its payload, and the exec inline with what was typed, linked to the
// player; the approval request links to the session and back.
func TestSessionPageShowsTheTimeline(t *testing.T) {
	f := newSessionsFixture(t)
	h := f.harness(t)
	c := h.login(t, "approver-1", approverGroup)

	_, req := h.get(t, c, "/approvals/"+f.request)
	assert.Contains(t, req, `href="/sessions/`+f.agent+`"`, "the request links to the requester's session")
	_, hist := h.get(t, c, "/approvals?session="+f.agent)
	assert.Contains(t, hist, `href="/sessions/`+f.agent+`" class="session-link"`, "history links to the session")

	code, body := h.get(t, c, "/sessions/"+f.agent)
	require.Equal(t, http.StatusOK, code, body)
	for _, want := range []string{
		"fix-build", "kubectl/v1.36.3",
		"get secrets ns/api", "secret: 1",
		"create clusterrolebindings admin", "requireApproval gatehouse-approvals/cluster-admin-bindings", `href="/approvals/` + f.request + `"`,
		"held for approval", "ClusterRoleBinding admin: roleRef{kind,name} subjects",
		"create pods/exec ns/shell", "Terminal recording", "<code>sh</code>", "exit 3",
		"$ cat /var/run/api/token", "$ exit 3",
		`href="/sessions/` + f.agent + `/recordings/` + f.agentRec + `"`,
		"Approval requests in this session",
	} {
		assert.Contains(t, body, htmlText(want))
	}
	assert.NotContains(t, body, " style=", "no inline style")
	assert.NotContains(t, body, "<script>", "no inline script")
	assert.NotContains(t, body, "wasm-unsafe-eval")
}

// htmlText is s as html/template escapes it in text.
func htmlText(s string) string {
	if strings.HasPrefix(s, "href=") || strings.HasPrefix(s, "<") {
		return s
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestRecordingPage: the player page loads the vendored player with subresource integrity under
// the console's policy plus WebAssembly compilation and nothing else; the cast is what `gatehouse
// sessions export` writes; the hash chain's verdict is shown, including for a changed chunk and
// a recording without its final chunk.
func TestRecordingPage(t *testing.T) {
	f := newSessionsFixture(t)
	h := f.harness(t)
	c := h.login(t, "approver-1", approverGroup)
	page := "/sessions/" + f.agent + "/recordings/" + f.agentRec

	resp, err := c.Get(h.ts.URL + page + "?speed=4")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Equal(t, strings.Replace(contentSecurityPolicy, "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", 1), csp,
		"the console's policy with WebAssembly compilation allowed, and nothing else")
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, csp, "'unsafe-eval'")
	for _, f := range []string{"asciinema-player.min.js", "player.js"} {
		assert.Regexp(t, `<script src="/static/`+f+`\?v=[0-9a-f]+" integrity="sha384-[A-Za-z0-9+/=&#;]+" defer></script>`, string(body))
	}
	assert.Regexp(t, `<link rel="stylesheet" href="/static/asciinema-player.css\?v=[0-9a-f]+" integrity="sha384-`, string(body))
	assert.Contains(t, string(body), `data-cast="`+page+`/cast"`)
	assert.Contains(t, string(body), `data-speed="4"`)
	assert.Contains(t, string(body), `data-verified="true"`)
	assert.Contains(t, string(body), "Verified:")
	assert.Contains(t, string(body), f.log.recordings[f.agentRec].Chunks[len(f.log.recordings[f.agentRec].Chunks)-1].Hash)
	assert.NotContains(t, string(body), " style=")

	for _, name := range []string{"asciinema-player.min.js", "asciinema-player.css", "player.js", "sessions.css"} {
		code, _ := h.get(t, c, "/static/"+name)
		assert.Equal(t, http.StatusOK, code, name)
	}
	// Other pages keep the strict policy.
	resp, err = c.Get(h.ts.URL + "/sessions/" + f.agent)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, contentSecurityPolicy, resp.Header.Get("Content-Security-Policy"))

	t.Run("the cast is the export", func(t *testing.T) {
		resp, err := c.Get(h.ts.URL + page + "/cast?download=1")
		require.NoError(t, err)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var want bytes.Buffer
		require.NoError(t, f.log.recordings[f.agentRec].Export(&want))
		assert.Equal(t, want.String(), string(got))
		cast, err := recording.Decode(bytes.NewReader(got))
		require.NoError(t, err)
		assert.Equal(t, 3, cast.Header.Version)
		assert.Contains(t, cast.Output(), "warning", "stderr is played as output")
		for _, e := range cast.Events {
			assert.NotEqual(t, recording.CodeStderr, e.Code)
		}
		assert.Equal(t, "application/x-asciicast", resp.Header.Get("Content-Type"))
		assert.Equal(t, `attachment; filename="`+f.agentRec+`.cast"`, resp.Header.Get("Content-Disposition"))
		assert.Equal(t, "verified", resp.Header.Get("Gatehouse-Recording-Chain"))
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	})

	t.Run("a changed chunk does not verify", func(t *testing.T) {
		// One letter of a chunk after the header changed: the cast still decodes, the chain
		// does not verify.
		rec := f.log.recordings[f.agentRec]
		i := slices.IndexFunc(rec.Chunks, func(c *trail.Recording) bool { return c.Seq > 0 && strings.Contains(c.Data, "a") })
		require.Positive(t, i)
		f.log.mu.Lock()
		saved := rec.Chunks[i].Data
		rec.Chunks[i].Data = strings.Replace(saved, "a", "c", 1)
		f.log.mu.Unlock()
		defer func() { f.log.mu.Lock(); rec.Chunks[i].Data = saved; f.log.mu.Unlock() }()
		_, body := h.get(t, c, page)
		assert.Contains(t, body, "Does not verify:")
		assert.Contains(t, body, `data-verified="false"`)
		resp, err := c.Get(h.ts.URL + page + "/cast")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, "not verified", resp.Header.Get("Gatehouse-Recording-Chain"))
	})

	t.Run("a recording without its final chunk is incomplete", func(t *testing.T) {
		id := "rec-cut-" + strings.ToLower(randomString(4))
		f.log.mu.Lock()
		f.log.recordings[id] = chunked(id, f.agent, "oidc:agent", testCast, 64, false)
		f.log.mu.Unlock()
		_, body := h.get(t, c, "/sessions/"+f.agent+"/recordings/"+id)
		assert.Contains(t, body, "Incomplete:")
		assert.Contains(t, body, "no final chunk")
	})
}

// TestSessionsListFilters: the list's filters reach the session log.
func TestSessionsListFilters(t *testing.T) {
	f := newSessionsFixture(t)
	h := f.harness(t)
	c := h.login(t, "auditor", "gatehouse:viewers")
	code, body := h.get(t, c, "/sessions?user=oidc:agent&from=2026-01-02T03:04&to=2026-02-01&recordings=1")
	require.Equal(t, http.StatusOK, code)
	got := f.log.lastFilter()
	assert.Equal(t, "oidc:agent", got.User)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), got.Since)
	assert.Equal(t, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), got.Until)
	assert.True(t, got.WithRecordings)
	assert.Contains(t, body, `value="oidc:agent"`)
	assert.Contains(t, body, "checked")

	_, body = h.get(t, c, "/sessions?from=yesterday")
	assert.Contains(t, body, htmlText(`"yesterday" is not a time`))

	// An approver's list: their own sessions and those of the requests they may see.
	a := h.login(t, "approver-1", approverGroup)
	_, body = h.get(t, a, "/sessions?recordings=1")
	assert.Contains(t, body, `id="session-`+f.agent+`"`)
	got = f.log.lastFilter()
	assert.Contains(t, got.IDs, f.agent)
	assert.True(t, got.WithRecordings)
}

// TestSessionPagesWithoutSessionLog: without ClickHouse the session pages say so and the rest of
// the console works; requests link to their history.
func TestSessionPagesWithoutSessionLog(t *testing.T) {
	h := newHarness(t)
	c := h.login(t, "approver-1", approverGroup)
	r := createRequest(t, "no-log-"+strings.ToLower(randomString(4)), time.Hour, 1)
	for _, p := range []string{"/sessions", "/sessions/" + r.SessionID, "/sessions/" + r.SessionID + "/recordings/x", "/sessions/" + r.SessionID + "/recordings/x/cast"} {
		code, body := h.get(t, c, p)
		assert.Equal(t, http.StatusServiceUnavailable, code, p)
		assert.Contains(t, body, "This console has no session log", p)
	}
	code, body := h.get(t, c, "/approvals/"+r.ID)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `href="/approvals?session=`+r.SessionID+`"`)
	code, _ = h.get(t, c, "/")
	assert.Equal(t, http.StatusOK, code)
}

// TestSessionLogUnavailable: a session log that fails answers 503 with a message, not its error.
func TestSessionLogUnavailable(t *testing.T) {
	f := newSessionsFixture(t)
	h := f.harness(t)
	c := h.login(t, "auditor", "gatehouse:viewers")
	f.log.mu.Lock()
	f.log.err = errors.New("dial tcp 10.1.2.3:9000: connection refused (password=hunter2)")
	f.log.mu.Unlock()
	for _, p := range []string{"/sessions", "/sessions/" + f.agent, "/sessions/" + f.agent + "/recordings/" + f.agentRec, "/sessions/" + f.agent + "/recordings/" + f.agentRec + "/cast"} {
		code, body := h.get(t, c, p)
		assert.Equal(t, http.StatusServiceUnavailable, code, p)
		assert.Contains(t, body, "could not be read", p)
		assert.NotContains(t, body, "hunter2", p)
		assert.NotContains(t, body, "10.1.2.3", p)
	}
}

// TestSessionPagesEscape: what agents control (labels, commands, typed lines, payloads) cannot
// become markup.
func TestSessionPagesEscape(t *testing.T) {
	f := newSessionsFixture(t)
	f.log.sessions[0].Label = `<script>alert(1)</script>`
	tl := f.log.timelines[f.agent]
	tl[0].Payload = `"><img src=x onerror=alert(1)>`
	tl[2].Recording.Typed = []string{`</pre><script>x()</script>`}
	tl[2].Recording.Command = []string{`<b>sh</b>`}
	h := f.harness(t)
	c := h.login(t, "agent", "agents")
	_, body := h.get(t, c, "/sessions/"+f.agent)
	assert.NotContains(t, body, "<script>alert(1)")
	assert.NotContains(t, body, "<img src=x")
	assert.NotContains(t, body, "</pre><script>")
	assert.NotContains(t, body, "<b>sh</b>")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	_, body = h.get(t, c, "/sessions")
	assert.NotContains(t, body, "<script>alert(1)")
}
