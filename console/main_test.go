package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/authn"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// env holds the real components every test of this package shares: NATS JetStream with the
// approval broker, and an OIDC issuer that signs real tokens and runs the authorization code
// flow with PKCE.
var env struct {
	nats *testbed.NATS
	// conn and broker are the console's: its NATS identity and the approval key, as deployed.
	conn   *nats.Conn
	broker *approvals.Broker
	// webhook creates approval requests, as admission does, with the webhook's identity.
	webhook *approvals.Broker
	issuer  *testbed.Issuer
	auth    *authn.Authenticator
}

// approvalKey is the approval key of the tests' console and webhook.
var approvalKey = []byte("console-test-approval-key-0123456789abcdef")

const (
	clientID      = "gatehouse"
	approverGroup = "gatehouse:approvers"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "console tests:", err)
		return 1
	}
	var err error
	if env.nats, err = testbed.StartNATS(); err != nil {
		return fail(err)
	}
	defer env.nats.Stop()
	if env.issuer, err = testbed.StartIssuer(); err != nil {
		return fail(err)
	}
	defer env.issuer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	broker := func(role natsbus.Role) (*nats.Conn, *approvals.Broker, error) {
		nc, err := env.nats.ConnectAs(role, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, nil, err
		}
		pub, err := trail.NewPublisher(nc, trail.PublisherOptions{Source: string(role) + "-test"})
		if err != nil {
			return nil, nil, err
		}
		b, err := approvals.New(js, approvals.Options{Key: approvalKey, Recorder: pub, Source: string(role) + "-test"})
		return nc, b, err
	}
	if env.conn, env.broker, err = broker(natsbus.RoleConsole); err != nil {
		return fail(err)
	}
	defer env.conn.Close()
	webhookConn, webhookBroker, err := broker(natsbus.RoleWebhook)
	if err != nil {
		return fail(err)
	}
	defer webhookConn.Close()
	env.webhook = webhookBroker
	cfg, err := authn.ParseAuthenticationConfig([]byte(env.issuer.AuthenticationConfig(clientID)))
	if err != nil {
		return fail(err)
	}
	if env.auth, err = authn.NewAuthenticator(authn.AuthenticatorOptions{Config: cfg}); err != nil {
		return fail(err)
	}
	go func() { _ = env.auth.Start(ctx) }()
	if err := testbed.WaitFor(ctx, 30*time.Second, env.auth.Ready); err != nil {
		return fail(err)
	}
	return m.Run()
}

// harness is a console served over TLS on loopback.
type harness struct {
	srv  *Server
	ts   *httptest.Server
	pool *x509.CertPool
}

func newHarness(t *testing.T, change ...func(*Options)) *harness {
	t.Helper()
	h := &harness{ts: httptest.NewUnstartedServer(nil)}
	h.ts.StartTLS()
	t.Cleanup(h.ts.Close)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ext, _ := url.Parse(h.ts.URL)
	o := Options{
		Broker:        env.broker,
		Authenticator: env.auth,
		API:           &approvals.API{Broker: env.broker, Authenticate: BearerAuthenticator(env.auth)},
		Providers:     []*Provider{{IssuerURL: env.issuer.URL, ClientID: clientID, HTTPClient: env.issuer.Client}},
		ExternalURL:   ext,
		SessionKey:    key,
		Connected:     env.conn.IsConnected,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, c := range change {
		c(&o)
	}
	var err error
	h.srv, err = New(o)
	require.NoError(t, err)
	h.ts.Config.Handler = h.srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.srv.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool { return h.srv.Ready(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
	h.pool = x509.NewCertPool()
	h.pool.AddCert(h.ts.Certificate())
	h.pool.AppendCertsFromPEM(env.issuer.CAPEM)
	return h
}

// authorize starts a login in browser c, completes it on the issuer's login page and returns the
// console's callback URL the issuer redirects to.
func (h *harness) authorize(t *testing.T, c *http.Client) *url.URL {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.ts.URL+"/login", nil)
	require.NoError(t, err)
	noFollow := *c
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noFollow.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode, "the console sends the browser to the issuer")
	cb, err := env.issuer.Authorize(resp.Header.Get("Location"))
	require.NoError(t, err)
	return cb
}

// browser returns an HTTP client with a cookie jar that trusts the console and the issuer, and
// does not follow redirects unless follow is set.
func (h *harness) browser(follow bool) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.pool, MinVersion: tls.VersionTLS12}}}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

// login signs subject in through the issuer and returns its browser.
func (h *harness) login(t *testing.T, subject string, groups ...string) *http.Client {
	t.Helper()
	env.issuer.Login(subject, groups...)
	c := h.browser(true)
	cb := h.authorize(t, c)
	resp, err := c.Get(cb.String())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "Signed in")
	return c
}

func (h *harness) get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(h.ts.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// csrf returns the CSRF token of c's session, from a page.
func (h *harness) csrf(t *testing.T, c *http.Client) string {
	t.Helper()
	_, body := h.get(t, c, "/")
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	require.GreaterOrEqual(t, i, 0, "no CSRF token in the page")
	rest := body[i+len(marker):]
	return rest[:strings.Index(rest, `"`)]
}

// post sends a form as a same-origin browser would, with extra headers.
func (h *harness) post(t *testing.T, c *http.Client, path string, form url.Values, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.ts.URL+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", h.ts.URL)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// createRequest stores a pending approval request for an agent's operation.
func createRequest(t *testing.T, name string, timeout time.Duration, required int) *approvals.Request {
	t.Helper()
	r, err := env.webhook.Create(t.Context(), approvals.Spec{
		Requester: trail.Identity{User: "oidc:agent", Groups: []string{"agents"},
			Extra: map[string][]string{"gatehouse.dev/client": {"kubectl/v1.36.3"}}},
		SessionID: "s-" + name,
		Operation: trail.Operation{Verb: "CREATE", APIGroup: "rbac.authorization.k8s.io", APIVersion: "v1",
			Resource: "clusterrolebindings", Name: name},
		Object:         []byte(`{"kind":"ClusterRoleBinding","metadata":{"name":"` + name + `"},"roleRef":{"kind":"ClusterRole","name":"cluster-admin"}}`),
		Fingerprint:    "fp-" + name,
		Policy:         trail.Policy{Policy: "gatehouse-approvals", Rule: "cluster-admin-bindings", Action: "requireApproval", Message: "Binding cluster-admin grants full control."},
		ApproverGroups: []string{approverGroup},
		Required:       required,
		GrantTTL:       time.Minute,
		Path:           approvals.PathAdmission,
		Timeout:        timeout,
	})
	require.NoError(t, err)
	return r
}

// sseEvent is one server-sent event.
type sseEvent struct{ Event, ID, Data string }

// sseStream reads events from a response body.
type sseStream struct {
	resp *http.Response
	r    *bufio.Reader
}

func (h *harness) events(t *testing.T, c *http.Client, query, lastEventID string) *sseStream {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, h.ts.URL+"/events?"+query, nil)
	require.NoError(t, err)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	s := &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() { s.resp.Body.Close() }

// next returns the next event that has a name (skipping retry and id-only messages).
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	type result struct {
		ev  sseEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var ev sseEvent
		var data []string
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				ch <- result{err: err}
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.Event != "" {
					ev.Data = strings.Join(data, "\n")
					ch <- result{ev: ev}
					return
				}
				data = nil
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return sseEvent{}
	}
}

// nextRequest returns the next "request" event.
func (s *sseStream) nextRequest(t *testing.T) sseEvent {
	t.Helper()
	for {
		ev := s.next(t)
		if ev.Event == "request" || ev.Event == "reset" {
			return ev
		}
	}
}

func trailIdentityOf(user string, groups ...string) trail.Identity {
	return trail.Identity{User: user, Groups: groups}
}

func operation(name string) trail.Operation {
	return trail.Operation{Verb: "UPDATE", APIVersion: "v1", Resource: "configmaps", Namespace: "team-a", Name: name}
}

func trailPolicy(message string) trail.Policy {
	return trail.Policy{Policy: "test", Rule: "held", Action: "requireApproval", Message: message}
}
