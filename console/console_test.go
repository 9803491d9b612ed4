package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

func TestLoginSetsAStrictSessionCookie(t *testing.T) {
	h := newHarness(t)
	env.issuer.Login("approver-1", approverGroup)
	c := h.browser(false)

	resp, err := c.Get(h.ts.URL + "/approvals?state=Pending")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a page without a session sends the browser to log in")
	require.Equal(t, "/login?next="+url.QueryEscape("/approvals?state=Pending"), resp.Header.Get("Location"))

	resp, err = c.Get(h.ts.URL + resp.Header.Get("Location"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	auth, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(auth.String(), env.issuer.URL+"/auth?"), auth.String())
	q := auth.Query()
	assert.Equal(t, "S256", q.Get("code_challenge_method"), "PKCE")
	assert.NotEmpty(t, q.Get("state"))
	assert.NotEmpty(t, q.Get("nonce"))
	assert.Equal(t, h.ts.URL+"/callback", q.Get("redirect_uri"))
	loginC := cookieNamed(resp.Cookies(), loginCookie)
	require.NotNil(t, loginC)
	assert.True(t, loginC.HttpOnly && loginC.Secure)
	assert.Equal(t, http.SameSiteLaxMode, loginC.SameSite, "the login cookie must come back with the issuer's cross-site redirect")

	cb, err := env.issuer.Authorize(auth.String())
	require.NoError(t, err)
	resp, err = c.Get(cb.String())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	sess := cookieNamed(resp.Cookies(), sessionCookie)
	require.NotNil(t, sess)
	assert.True(t, sess.HttpOnly, "HttpOnly")
	assert.True(t, sess.Secure, "Secure")
	assert.Equal(t, http.SameSiteStrictMode, sess.SameSite)
	assert.Equal(t, "/", sess.Path)
	assert.Contains(t, string(body), `content="0;url=/approvals?state=Pending"`, "continues where the approver was going")

	code, page := h.get(t, c, "/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, page, "oidc:approver-1")
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestLoginRefused: every way of completing someone else's or a tampered login fails.
func TestLoginRefused(t *testing.T) {
	h := newHarness(t)
	start := h.authorize
	for _, tc := range []struct {
		name   string
		groups []string
		setup  func()
		// callback may change the callback URL and say which browser completes the login.
		callback func(t *testing.T, cb *url.URL, own *http.Client) *http.Client
		want     int
	}{
		{name: "state of another login", callback: func(t *testing.T, cb *url.URL, own *http.Client) *http.Client {
			q := cb.Query()
			q.Set("state", "forged")
			cb.RawQuery = q.Encode()
			return own
		}, want: http.StatusBadRequest},
		{name: "callback in another browser (login CSRF)", callback: func(t *testing.T, cb *url.URL, own *http.Client) *http.Client {
			return h.browser(false)
		}, want: http.StatusBadRequest},
		{name: "ID token with another login's nonce", setup: env.issuer.LoginWithWrongNonce, want: http.StatusForbidden},
		{name: "callback replayed after the login", callback: func(t *testing.T, cb *url.URL, own *http.Client) *http.Client {
			resp, err := own.Get(cb.String())
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "the login itself succeeds")
			return h.browser(false)
		}, want: http.StatusBadRequest},
		{name: "identity in system:masters", groups: []string{"system:masters"}, want: http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.issuer.Login("mallory", append([]string{approverGroup}, tc.groups...)...)
			if tc.setup != nil {
				tc.setup()
			}
			own := h.browser(false)
			cb := start(t, own)
			c := own
			if tc.callback != nil {
				c = tc.callback(t, cb, own)
			}
			resp, err := c.Get(cb.String())
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			assert.Nil(t, cookieNamed(resp.Cookies(), sessionCookie), "no session")
		})
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/approvals/ap-x":   "/approvals/ap-x",
		"":                  "/",
		"https://evil.test": "/",
		"//evil.test/x":     "/",
		"/\\evil.test":      "/",
		"/a\r\nSet-Cookie:": "/",
		"javascript:alert":  "/",
	} {
		assert.Equal(t, want, safeNext(in), in)
	}
}

func TestSessionEnds(t *testing.T) {
	h := newHarness(t)
	c := h.login(t, "approver-1", approverGroup)
	u, _ := url.Parse(h.ts.URL)

	// A tampered cookie is no session.
	orig := c.Jar.Cookies(u)
	tampered := cookieNamed(orig, sessionCookie)
	require.NotNil(t, tampered)
	raw := []byte(tampered.Value)
	raw[len(raw)/2] ^= 1
	forged := h.browser(false)
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: string(raw)}})
	resp, err := forged.Get(h.ts.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)

	// Logout revokes the session, even for a copy of its cookie.
	copyC := h.browser(false)
	copyC.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: tampered.Value}})
	code, _ := h.get(t, copyC, "/")
	require.Equal(t, http.StatusOK, code)
	code, _ = h.post(t, c, "/logout", url.Values{"csrf": {h.csrf(t, c)}}, nil)
	require.Equal(t, http.StatusOK, code)
	resp, err = copyC.Get(h.ts.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a copied cookie of a logged-out session is refused")
}

// TestDecisionsNeedTheSessionsCSRFToken: a state change is accepted only from the console's own
// page in the same session.
func TestDecisionsNeedTheSessionsCSRFToken(t *testing.T) {
	h := newHarness(t)
	approver := h.login(t, "approver-1", approverGroup)
	other := h.login(t, "approver-2", approverGroup)
	otherToken := h.csrf(t, other)
	ownToken := h.csrf(t, approver)
	r := createRequest(t, "csrf", time.Hour, 1)
	path := "/approvals/" + r.ID + "/decide"
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers map[string]string
		want    int
	}{
		{"no token", url.Values{"verdict": {"Approve"}, "reason": {"ok"}}, nil, http.StatusForbidden},
		{"another session's token", url.Values{"verdict": {"Approve"}, "reason": {"ok"}, "csrf": {otherToken}}, nil, http.StatusForbidden},
		{"cross-site request", url.Values{"verdict": {"Approve"}, "reason": {"ok"}, "csrf": {ownToken}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign Origin", url.Values{"verdict": {"Approve"}, "reason": {"ok"}, "csrf": {ownToken}}, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.test"}, http.StatusForbidden},
		{"no reason", url.Values{"verdict": {"Approve"}, "reason": {"  "}, "csrf": {ownToken}}, nil, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _ := h.post(t, approver, path, tc.form, tc.headers)
			assert.Equal(t, tc.want, code)
			got, err := env.broker.Get(t.Context(), r.ID)
			require.NoError(t, err)
			assert.Empty(t, got.Decisions, "nothing was decided")
		})
	}
	code, _ := h.post(t, approver, path, url.Values{"verdict": {"Approve"}, "reason": {"change 4711"}, "csrf": {ownToken}}, nil)
	assert.Equal(t, http.StatusOK, code, "the redirect to the request's page is followed")
	got, err := env.broker.Get(t.Context(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, approvals.StateApproved, got.State)
	assert.Equal(t, "change 4711", got.Decisions[0].Reason)
}

// TestWhoSeesWhat: approvers get the decision form, a viewer sees the request without it and
// cannot decide even with a valid form, and an outsider does not see it at all.
func TestWhoSeesWhat(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.ViewerGroups = []string{"gatehouse:viewers"} })
	r := createRequest(t, "visibility", time.Hour, 1)
	page := "/approvals/" + r.ID

	approver := h.login(t, "approver-1", approverGroup)
	code, body := h.get(t, approver, page)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<section id="decide" class="decide" aria-labelledby="decide-title">`, "the decision form is shown")

	viewer := h.login(t, "viewer-1", "gatehouse:viewers")
	code, body = h.get(t, viewer, page)
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `<section id="decide" class="decide" hidden`, "no decision form")
	assert.Contains(t, body, "Only members of &#34;gatehouse:approvers&#34; may decide this request.")
	_, inbox := h.get(t, viewer, "/")
	assert.NotContains(t, inbox, `class="button decide-link"`)
	code, _ = h.post(t, viewer, page+"/decide", url.Values{"verdict": {"Approve"}, "reason": {"me too"}, "csrf": {h.csrf(t, viewer)}}, nil)
	assert.Equal(t, http.StatusForbidden, code, "the broker refuses a vote from outside the approver groups")

	outsider := h.login(t, "dev-1", "dev")
	code, _ = h.get(t, outsider, page)
	assert.Equal(t, http.StatusNotFound, code)
	_, inbox = h.get(t, outsider, "/")
	assert.NotContains(t, inbox, r.ID)
	code, _ = h.post(t, outsider, page+"/decide", url.Values{"verdict": {"Deny"}, "reason": {"no"}, "csrf": {h.csrf(t, outsider)}}, nil)
	assert.Equal(t, http.StatusNotFound, code)

	requester := h.login(t, "agent", "agents")
	code, body = h.get(t, requester, page)
	require.Equal(t, http.StatusOK, code, "requesters see their own requests")
	assert.Contains(t, body, "Approvers cannot decide their own requests.")

	got, err := env.broker.Get(t.Context(), r.ID)
	require.NoError(t, err)
	assert.Empty(t, got.Decisions)
}

// TestEventsResumeWithoutLossOrDuplicates: a stream that reconnects with Last-Event-ID gets
// exactly the changes it missed, in order; one that is too far behind starts over.
func TestEventsResumeWithoutLossOrDuplicates(t *testing.T) {
	h := newHarness(t)
	h.srv.hub.mu.Lock()
	h.srv.hub.logSize = 6
	h.srv.hub.mu.Unlock()
	approver := h.login(t, "approver-1", approverGroup)
	_, since, _ := h.srv.hub.snapshot()

	s := h.events(t, approver, "since="+strconv.FormatUint(since, 10), "")
	first := createRequest(t, "resume-1", time.Hour, 2)
	ev := s.nextRequest(t)
	require.Equal(t, "request", ev.Event)
	assert.Contains(t, ev.Data, `id="req-`+first.ID+`"`)
	s.close()

	// Missed while disconnected: two new requests and a vote.
	second := createRequest(t, "resume-2", time.Hour, 1)
	third := createRequest(t, "resume-3", time.Hour, 1)
	other := h.login(t, "approver-2", approverGroup)
	_, err := env.broker.Decide(t.Context(), first.ID, identityOf(t, h, other), approvals.Approve, "one of two")
	require.NoError(t, err)

	s = h.events(t, approver, "since=0", ev.ID) // Last-Event-ID wins over since
	var got []string
	last, _ := strconv.ParseUint(ev.ID, 10, 64)
	for range 3 {
		ev := s.nextRequest(t)
		require.Equal(t, "request", ev.Event)
		rev, _ := strconv.ParseUint(ev.ID, 10, 64)
		assert.Greater(t, rev, last, "revisions only grow")
		last = rev
		got = append(got, idIn(ev.Data))
	}
	assert.Equal(t, []string{second.ID, third.ID, first.ID}, got, "exactly the missed changes, in order")

	// Too far behind: the log holds 6 changes; make more and resume from the start.
	var flood *approvals.Request
	for i := range 7 {
		flood = createRequest(t, "resume-flood-"+strconv.Itoa(i), time.Hour, 1)
	}
	require.Eventually(t, func() bool { it, _ := h.srv.hub.get(flood.ID); return it != nil }, 10*time.Second, 10*time.Millisecond,
		"the console follows the flood")
	s2 := h.events(t, approver, "", ev.ID)
	reset := s2.nextRequest(t)
	require.Equal(t, "reset", reset.Event, "starts over from the whole state")
	assert.Contains(t, reset.Data, first.ID)
	assert.Contains(t, reset.Data, "resume-flood-6")
}

func idIn(html string) string {
	i := strings.Index(html, `id="req-`)
	if i < 0 {
		return ""
	}
	rest := html[i+len(`id="req-`):]
	return rest[:strings.Index(rest, `"`)]
}

// identityOf returns the identity a browser's session carries.
func identityOf(t *testing.T, h *harness, c *http.Client) trail.Identity {
	t.Helper()
	u, _ := url.Parse(h.ts.URL)
	var sess session
	require.NoError(t, h.srv.sealer.open(sessionCookie, cookieNamed(c.Jar.Cookies(u), sessionCookie).Value, &sess))
	return sess.Identity
}

func TestEventsAreFilteredByVisibility(t *testing.T) {
	h := newHarness(t)
	outsider := h.login(t, "dev-2", "dev")
	_, since, _ := h.srv.hub.snapshot()
	s := h.events(t, outsider, "since="+strconv.FormatUint(since, 10), "")
	hidden := createRequest(t, "hidden", time.Hour, 1)
	// The outsider's own request follows; it must be the first request event it gets.
	own, err := env.webhook.Create(t.Context(), approvals.Spec{
		Requester: trailIdentityOf("oidc:dev-2", "dev"), Operation: operation("own"), Fingerprint: "fp-own",
		ApproverGroups: []string{approverGroup}, Required: 1, GrantTTL: time.Minute, Timeout: time.Hour,
	})
	require.NoError(t, err)
	ev := s.nextRequest(t)
	assert.Equal(t, own.ID, idIn(ev.Data))
	assert.NotContains(t, ev.Data, hidden.ID)
}

func TestAPIAcceptsBearerTokensOnly(t *testing.T) {
	h := newHarness(t)
	browser := h.login(t, "approver-1", approverGroup)
	resp, err := browser.Get(h.ts.URL + approvals.APIPrefix)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the session cookie does not authenticate the API")

	c := env.issuer.Claims("approver-1")
	c["aud"] = clientID
	c["groups"] = []string{approverGroup}
	client := &approvals.Client{BaseURL: h.ts.URL, HTTP: &http.Client{Transport: bearer{token: env.issuer.MustSign(t, c), rt: browser.Transport}}}
	r := createRequest(t, "api", time.Hour, 1)
	got, err := client.Get(t.Context(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, r.ID, got.ID)
}

type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	c := h.login(t, "approver-1", approverGroup)
	resp, err := c.Get(h.ts.URL + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		assert.Contains(t, csp, want)
	}
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, csp, "unsafe-eval")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.NotContains(t, string(body), "<script>", "no inline script")
	assert.NotContains(t, string(body), " style=", "no inline style")
	assert.Contains(t, string(body), `integrity="sha384-`)

	for _, f := range []string{"htmx.min.js", "hx-sse.min.js", "console.js", "console.css"} {
		code, _ := h.get(t, c, "/static/"+f)
		assert.Equal(t, http.StatusOK, code, f)
	}
	code, _ := h.get(t, c, "/static/../doc.go")
	assert.Equal(t, http.StatusNotFound, code)
}

// TestEverythingIsEscaped: what requesters control cannot become markup.
func TestEverythingIsEscaped(t *testing.T) {
	h := newHarness(t)
	c := h.login(t, "approver-1", approverGroup)
	r, err := env.webhook.Create(t.Context(), approvals.Spec{
		Requester: trailIdentityOf(`oidc:<script>alert(1)</script>`, "agents"), Operation: operation(`"><img src=x onerror=alert(1)>`),
		Object: []byte(`{"metadata":{"name":"</pre><script>x()</script>"}}`), Fingerprint: "fp-esc",
		Policy: trailPolicy(`<b>bold</b>`), ApproverGroups: []string{approverGroup}, Required: 1, GrantTTL: time.Minute, Timeout: time.Hour,
	})
	require.NoError(t, err)
	_, body := h.get(t, c, "/approvals/"+r.ID)
	assert.NotContains(t, body, "<script>alert(1)")
	assert.NotContains(t, body, "<img src=x")
	assert.NotContains(t, body, "</pre><script>")
	assert.NotContains(t, body, "<b>bold</b>")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
}

// TestExpiryIsShownAndEnforced: the console records the expiry at the deadline, every page is
// told, and a late decision is refused.
func TestExpiryIsShownAndEnforced(t *testing.T) {
	h := newHarness(t)
	approver := h.login(t, "approver-1", approverGroup)
	token := h.csrf(t, approver)
	_, since, _ := h.srv.hub.snapshot()
	r := createRequest(t, "expiring", 2*time.Second, 1)
	s := h.events(t, approver, "id="+r.ID+"&since="+strconv.FormatUint(since, 10), "")
	ev := s.nextRequest(t)
	assert.Contains(t, ev.Data, `data-state="Pending"`)
	ev = s.nextRequest(t)
	assert.Contains(t, ev.Data, `data-state="Expired"`, "the expiry is recorded and streamed without anyone asking")
	got, err := env.broker.Get(t.Context(), r.ID)
	require.NoError(t, err)
	assert.Equal(t, approvals.StateExpired, got.State)
	code, body := h.post(t, approver, "/approvals/"+r.ID+"/decide", url.Values{"verdict": {"Approve"}, "reason": {"late"}, "csrf": {token}}, nil)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "already decided")
}

func TestNotifications(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	var attempts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if attempts.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried with backoff
			return
		}
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
	}))
	defer hook.Close()
	n, err := NewNotifier([]Webhook{{URL: hook.URL + "/json", Format: FormatJSON}, {URL: hook.URL + "/slack", Format: FormatSlack}}, nil)
	require.NoError(t, err)
	n.Backoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 5}
	h := newHarness(t, func(o *Options) { o.Notifier = n })
	n.RequestURL = h.srv.RequestURL

	r, err := env.webhook.Create(t.Context(), approvals.Spec{
		Requester: trailIdentityOf("oidc:agent", "agents"), Operation: operation("notify"),
		Object: []byte(`{"kind":"Secret","data":{"password":"gatehouse:masked:abc"}}`), Fingerprint: "fp-notify",
		Policy: trailPolicy("Secrets are reviewed."), ApproverGroups: []string{approverGroup}, Required: 1, GrantTTL: time.Minute, Timeout: time.Hour,
	})
	require.NoError(t, err)
	approver := h.login(t, "approver-1", approverGroup)
	_, err = env.broker.Decide(t.Context(), r.ID, identityOf(t, h, approver), approvals.Approve, "looks right")
	require.NoError(t, err)

	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) >= 4 }, 20*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var events []string
	for _, b := range bodies {
		raw, _ := json.Marshal(b)
		assert.NotContains(t, string(raw), "password", "no object")
		assert.NotContains(t, string(raw), "masked:abc")
		if e, ok := b["event"].(string); ok {
			assert.Equal(t, r.ID, b["approvalID"])
			assert.Equal(t, h.ts.URL+"/approvals/"+r.ID, b["url"])
			events = append(events, e)
		} else {
			assert.Contains(t, b["text"], "<"+h.ts.URL+"/approvals/"+r.ID+"|"+r.ID+">", "Slack link")
		}
	}
	assert.Equal(t, []string{"requested", "approved"}, events)
}

func TestLineDiff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string
		want     []diffLine
	}{
		{"equal", "a\nb\n", "a\nb\n", nil},
		{"changed value", "data:\n  k: v1\nkind: ConfigMap\n", "data:\n  k: v2\nkind: ConfigMap\n",
			[]diffLine{{" ", "data:"}, {"-", "  k: v1"}, {"+", "  k: v2"}, {" ", "kind: ConfigMap"}}},
		{"context folds", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\n5\n6\n7\n8\nX\n",
			[]diffLine{{"~", "…"}, {" ", "6"}, {" ", "7"}, {" ", "8"}, {"-", "9"}, {"+", "X"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, lineDiff(tc.old, tc.new, 3))
		})
	}
}

func TestRequestPageShowsTheDiffOfAnUpdate(t *testing.T) {
	h := newHarness(t)
	c := h.login(t, "approver-1", approverGroup)
	r, err := env.webhook.Create(t.Context(), approvals.Spec{
		Requester: trailIdentityOf("oidc:agent", "agents"), Operation: operation("cm"),
		OldObject:   []byte(`{"kind":"ConfigMap","metadata":{"name":"cm","managedFields":[{"manager":"kubectl"}]},"data":{"mode":"safe"}}`),
		Object:      []byte(`{"kind":"ConfigMap","metadata":{"name":"cm"},"data":{"mode":"dangerous"}}`),
		Fingerprint: "fp-diff", Policy: trailPolicy("held"), ApproverGroups: []string{approverGroup}, Required: 1,
		GrantTTL: time.Minute, Timeout: time.Hour,
	})
	require.NoError(t, err)
	_, body := h.get(t, c, "/approvals/"+r.ID)
	assert.Contains(t, body, `<span class="d del">-   mode: safe</span>`)
	assert.Contains(t, body, `<span class="d add">&#43;   mode: dangerous</span>`)
	assert.NotContains(t, body, "managedFields")
}

func TestOptionsValidate(t *testing.T) {
	ext, _ := url.Parse("https://console.example.com")
	valid := func() Options {
		return Options{Broker: env.broker, Authenticator: env.auth, Providers: []*Provider{{IssuerURL: "https://issuer", ClientID: "c"}},
			ExternalURL: ext, SessionKey: make([]byte, 32)}
	}
	for _, tc := range []struct {
		name   string
		change func(*Options)
		ok     bool
	}{
		{"valid", func(*Options) {}, true},
		{"no broker", func(o *Options) { o.Broker = nil }, false},
		{"no provider", func(o *Options) { o.Providers = nil }, false},
		{"provider without client", func(o *Options) { o.Providers[0].ClientID = "" }, false},
		{"http", func(o *Options) { o.ExternalURL, _ = url.Parse("http://console.example.com") }, false},
		{"short key", func(o *Options) { o.SessionKey = make([]byte, 16) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.change(&o)
			_, err := New(o)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrInvalidOption)
			}
		})
	}
}

// TestRequesterReasonIsShown: a reason stored with the request (the Gatehouse-Reason header)
// is shown, escaped, in the inbox row.
func TestRequesterReasonIsShown(t *testing.T) {
	h := newHarness(t)
	r := createRequest(t, "reason", time.Hour, 1)
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	m["reason"] = "rotate the <b>on-call</b> binding, ticket 4711"
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	it := decodeItem(&approvals.Change{Revision: 1, Request: r, Raw: raw})
	sess := &session{ID: "s", Identity: trail.Identity{User: "oidc:approver-1", Groups: []string{approverGroup}}}
	row := h.srv.fragment(sess, it, false, time.Now())
	assert.Contains(t, row, "rotate the &lt;b&gt;on-call&lt;/b&gt; binding, ticket 4711")
}

func TestHistoryFilters(t *testing.T) {
	h := newHarness(t)
	approver := h.login(t, "approver-1", approverGroup)
	denied := createRequest(t, "history-denied", time.Hour, 1)
	_, err := env.broker.Decide(t.Context(), denied.ID, identityOf(t, h, approver), approvals.Deny, "no")
	require.NoError(t, err)
	pending := createRequest(t, "history-pending", time.Hour, 1)
	// The hub learns of both requests from the broker's watch, in their own time.
	require.Eventually(t, func() bool {
		d, _ := h.srv.hub.get(denied.ID)
		p, _ := h.srv.hub.get(pending.ID)
		return d != nil && d.State == approvals.StateDenied && p != nil
	}, 10*time.Second, 10*time.Millisecond)
	for _, tc := range []struct {
		query      string
		want, not  []string
		wantStatus int
	}{
		{"state=Denied", []string{denied.ID}, []string{pending.ID}, http.StatusOK},
		{"state=Pending&session=s-history-pending", []string{pending.ID}, []string{denied.ID}, http.StatusOK},
		{"requester=AGENT&session=s-history-denied", []string{denied.ID}, []string{pending.ID}, http.StatusOK},
		{"namespace=elsewhere", nil, []string{denied.ID, pending.ID}, http.StatusOK},
		{"from=2999-01-01T00:00", nil, []string{denied.ID, pending.ID}, http.StatusOK},
		{"to=yesterday", []string{"is not a time"}, nil, http.StatusOK},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := h.get(t, approver, "/approvals?"+tc.query)
			require.Equal(t, tc.wantStatus, code)
			for _, w := range tc.want {
				assert.Contains(t, body, w)
			}
			for _, n := range tc.not {
				assert.NotContains(t, body, n)
			}
		})
	}
}

// TestForgedRequestsAreNotShown: a request changed straight in NATS (here its approver groups,
// widened to the agents themselves) fails its integrity check: the console drops it from the
// inbox, shows no detail, refuses decisions, and the approvals API refuses it too.
func TestForgedRequestsAreNotShown(t *testing.T) {
	h := newHarness(t)
	approver := h.login(t, "approver-1", approverGroup)
	token := h.csrf(t, approver)
	r := createRequest(t, "forged", time.Hour, 1)
	require.Eventually(t, func() bool { it, _ := h.srv.hub.get(r.ID); return it != nil }, 10*time.Second, 20*time.Millisecond)

	nc, err := env.nats.Connect()
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(t.Context(), approvals.Bucket)
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), approvals.PrefixRequest+"."+r.ID)
	require.NoError(t, err)
	forged := strings.Replace(string(e.Value()), approverGroup, "agents", 1)
	require.NotEqual(t, string(e.Value()), forged)
	_, err = kv.Put(t.Context(), approvals.PrefixRequest+"."+r.ID, []byte(forged))
	require.NoError(t, err)

	require.Eventually(t, func() bool { it, _ := h.srv.hub.get(r.ID); return it == nil }, 10*time.Second, 20*time.Millisecond,
		"the console drops the request from what it shows")
	code, body := h.get(t, approver, "/approvals/"+r.ID)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "failed its integrity check")
	code, body = h.post(t, approver, "/approvals/"+r.ID+"/decide", url.Values{"verdict": {"Approve"}, "reason": {"ok"}, "csrf": {token}}, nil)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, body, "failed its integrity check")
	_, body = h.get(t, approver, "/")
	assert.NotContains(t, body, r.ID, "the inbox leaves it out")

	c := env.issuer.Claims("approver-1")
	c["aud"] = clientID
	c["groups"] = []string{approverGroup}
	client := &approvals.Client{BaseURL: h.ts.URL, HTTP: &http.Client{Transport: bearer{token: env.issuer.MustSign(t, c), rt: approver.Transport}}}
	_, err = client.Get(t.Context(), r.ID)
	var apiErr *approvals.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Message, "integrity check")
	_, err = client.Decide(t.Context(), r.ID, approvals.Approve, "ok")
	require.ErrorAs(t, err, &apiErr)
	assert.Contains(t, apiErr.Message, "integrity check")
}
