package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/serving"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// holdBed is a proxy in front of a stand-in API server whose admission holds what the test
// says, with a real broker on NATS.
type holdBed struct {
	u      *upstream
	p      string
	client *http.Client
	broker *approvals.Broker
}

func newHoldBed(t *testing.T) *holdBed {
	t.Helper()
	// Admission and the console, with the approval key.
	pub, err := trail.NewPublisher(env.inspect.Conn(), trail.PublisherOptions{})
	require.NoError(t, err)
	broker, err := approvals.New(env.inspect, approvals.Options{Key: []byte("proxy-test-approval-key-0123456789abcdef"), Recorder: pub, Source: "proxy-test"})
	require.NoError(t, err)
	// The proxy's own broker: no key, its own NATS identity; it only reads and waits.
	reader, err := approvals.New(env.js, approvals.Options{Source: "proxy"})
	require.NoError(t, err)
	u := newUpstream(t)
	srv := newStubProxy(t, u, func(o *proxy.Options) { o.Approvals = reader; o.MaxHold = 30 * time.Second })
	return &holdBed{u: u, p: srv.URL, client: srv.Client(), broker: broker}
}

// request creates the approval request admission would create for user.
func (b *holdBed) request(t *testing.T, user string) *approvals.Request {
	t.Helper()
	r, err := b.broker.Create(t.Context(), approvals.Spec{
		Requester: trail.Identity{User: user}, Operation: trail.Operation{Verb: "create", Resource: "secrets", Namespace: "default", Name: "db"},
		Fingerprint: "f-" + trail.NewID(), Reason: "rotate the key",
		Policy:         trail.Policy{Policy: "gatehouse-approvals", Rule: "secret-changes", Action: "requireApproval", Message: `CREATE secrets "db" requires approval. [AccessPolicy "gatehouse-approvals", rule "secret-changes"]`},
		ApproverGroups: []string{"gatehouse:approvers"}, Required: 1, GrantTTL: time.Minute, Path: approvals.PathAdmission, Timeout: time.Minute,
	})
	require.NoError(t, err)
	return r
}

// holdsUntilApproved makes the stand-in API server deny every call without the approval extra
// as admission holding it for id (as JSON, or protobuf), and admit the others.
func (b *holdBed) holdsUntilApproved(id string, asProtobuf bool) {
	b.u.setRespond(func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		if r.Header.Get("Impersonate-Extra-Gatehouse.dev%2fapproval-Id") == id {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
			return true
		}
		st := serving.FailureStatus(http.StatusForbidden, metav1.StatusReasonForbidden,
			`admission webhook "privileged.validate.gatehouse.dev" denied the request: held`, approvals.StatusDetails(id))
		if asProtobuf {
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			w.WriteHeader(http.StatusForbidden)
			_ = protobufStatus.Encode(st, w)
			return true
		}
		serving.WriteStatus(w, st)
		return true
	})
}

var protobufStatus = func() runtime.Encoder {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return protobuf.NewSerializer(s, s)
}()

// create posts a Secret through the proxy with the client options in hdr.
func (b *holdBed) create(t *testing.T, user string, hdr map[string]string) (*http.Response, metav1.Status) {
	t.Helper()
	body := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"stringData":{"k":"v"}}`
	req, err := http.NewRequest(http.MethodPost, b.p+"/api/v1/namespaces/default/secrets", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, user, nil))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var st metav1.Status
	if resp.StatusCode >= 300 {
		require.NoError(t, json.Unmarshal(data, &st), string(data))
	}
	return resp, st
}

// approveWhenHeld approves r once the proxy holds a call for it.
func (b *holdBed) approveWhenHeld(t *testing.T, r *approvals.Request) {
	t.Helper()
	go func() {
		// The proxy has read the request when it waits: a held call is one attempt in.
		require.Eventually(t, func() bool { return len(b.u.seen()) >= 1 }, 10*time.Second, 5*time.Millisecond)
		_, err := b.broker.Decide(t.Context(), r.ID, trail.Identity{User: "oidc:approver", Groups: []string{"gatehouse:approvers"}}, approvals.Approve, "ok")
		assert.NoError(t, err)
	}()
}

// TestHeldCallIsReSentOnceApproved: a call admission holds is held by the proxy and re-sent
// exactly once after approval, with the approval and an Audit-ID of its own; JSON and protobuf
// denials alike.
func TestHeldCallIsReSentOnceApproved(t *testing.T) {
	for _, asProtobuf := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "protobuf"}[asProtobuf], func(t *testing.T) {
			b := newHoldBed(t)
			r := b.request(t, "oidc:held-agent")
			b.holdsUntilApproved(r.ID, asProtobuf)
			b.approveWhenHeld(t, r)
			resp, st := b.create(t, "held-agent", nil)
			require.Equal(t, http.StatusCreated, resp.StatusCode, st.Message)

			attempts := b.u.seen()
			require.Len(t, attempts, 2, "held once, re-sent once")
			first, second := attempts[0].header, attempts[1].header
			assert.Empty(t, first.Get("Impersonate-Extra-Gatehouse.dev%2fapproval-Id"))
			assert.Equal(t, r.ID, second.Get("Impersonate-Extra-Gatehouse.dev%2fapproval-Id"))
			assert.NotEqual(t, first.Get("Audit-Id"), second.Get("Audit-Id"), "each attempt has its own Audit-ID")
			assert.Equal(t, second.Get("Audit-Id"), resp.Header.Get("Audit-Id"), "the client gets the Audit-ID of the attempt that ran")
			assert.Equal(t, attempts[0].body, attempts[1].body, "the same body")
			assert.Equal(t, first.Get("Impersonate-User"), second.Get("Impersonate-User"))

			rec := requestRecord(t, resp.Header.Get("Gatehouse-Session"), second.Get("Audit-Id"))
			assert.Equal(t, first.Get("Audit-Id"), rec.HeldAuditID, "the record names the held attempt")
			assert.Equal(t, r.ID, rec.ApprovalID)
			assert.Equal(t, http.StatusCreated, rec.Code)
		})
	}
}

func TestHoldOptions(t *testing.T) {
	t.Run("refuse answers at once with the approval ID, rule, approvers and commands", func(t *testing.T) {
		b := newHoldBed(t)
		r := b.request(t, "oidc:refusing-agent")
		b.holdsUntilApproved(r.ID, false)
		resp, st := b.create(t, "refusing-agent", map[string]string{proxy.HoldHeader: proxy.HoldRefuse})
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		id, ok := approvals.IDFromStatus(&st)
		require.True(t, ok, "the approval ID is in the Status details")
		assert.Equal(t, r.ID, id)
		for _, want := range []string{r.ID, `rule "secret-changes"`, "gatehouse:approvers", "`gatehouse approvals approve " + r.ID + "`",
			"send the same request again", `"rotate the key"`, "hold=wait"} {
			assert.Contains(t, st.Message, want)
		}
		assert.Len(t, b.u.seen(), 1, "not held, not re-sent")

		// Its retry passes once approved: admission admits it with the grant.
		_, err := b.broker.Decide(t.Context(), r.ID, trail.Identity{User: "oidc:approver", Groups: []string{"gatehouse:approvers"}}, approvals.Approve, "")
		require.NoError(t, err)
		b.u.setRespond(nil)
		resp, _ = b.create(t, "refusing-agent", map[string]string{proxy.HoldHeader: proxy.HoldRefuse})
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("a denial names the approver's reason, the rule and the approvers", func(t *testing.T) {
		b := newHoldBed(t)
		r := b.request(t, "oidc:denied-agent")
		b.holdsUntilApproved(r.ID, false)
		decided := make(chan error, 1)
		go func() {
			if err := testbed.WaitFor(t.Context(), 10*time.Second, func(context.Context) error {
				if len(b.u.seen()) < 1 {
					return errors.New("the call never reached admission")
				}
				return nil
			}); err != nil {
				decided <- err
				return
			}
			// The decision outlives the held call: the broker records it after the proxy saw it.
			_, err := b.broker.Decide(context.WithoutCancel(t.Context()), r.ID, trail.Identity{User: "oidc:approver", Groups: []string{"gatehouse:approvers"}}, approvals.Deny, "use the vault")
			decided <- err
		}()
		resp, st := b.create(t, "denied-agent", nil)
		require.NoError(t, <-decided)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		for _, want := range []string{"denied by oidc:approver: use the vault", `rule "secret-changes"`, `"rotate the key"`} {
			assert.Contains(t, st.Message, want)
		}
		assert.Len(t, b.u.seen(), 1, "a denied call is not re-sent")
	})
	t.Run("a client's hold duration", func(t *testing.T) {
		b := newHoldBed(t)
		r := b.request(t, "oidc:impatient-agent")
		b.holdsUntilApproved(r.ID, false)
		start := time.Now()
		resp, st := b.create(t, "impatient-agent", map[string]string{proxy.HoldHeader: "300ms"})
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Less(t, time.Since(start), 10*time.Second, "held at most as long as the client asked")
		assert.Contains(t, st.Message, "held this request for 300ms and nobody decided it")
		assert.Contains(t, st.Message, "gatehouse approvals approve "+r.ID)
		id, _ := approvals.IDFromStatus(&st)
		assert.Equal(t, r.ID, id)
	})
	t.Run("an approval request of another operation is not a hold", func(t *testing.T) {
		// What a pod reached through pods/proxy could answer: the client's own approval of
		// a Secret's create, approved, named in a 403 of a call to the pod.
		b := newHoldBed(t)
		r := b.request(t, "oidc:pod-owner")
		b.holdsUntilApproved(r.ID, false)
		_, err := b.broker.Decide(t.Context(), r.ID, trail.Identity{User: "oidc:approver", Groups: []string{"gatehouse:approvers"}}, approvals.Approve, "ok")
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodGet, b.p+"/api/v1/namespaces/default/pods/web/proxy/status", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token(t, "pod-owner", nil))
		resp, err := b.client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, string(body))
		assert.Contains(t, string(body), "denied the request: held", "the answer as it came")
		attempts := b.u.seen()
		require.Len(t, attempts, 1, "not re-sent with the approval")
		rec := requestRecord(t, resp.Header.Get("Gatehouse-Session"), attempts[0].header.Get("Audit-Id"))
		assert.Empty(t, rec.ApprovalID, "the record names no approval")
		assert.Empty(t, rec.HeldAuditID)
	})
	t.Run("another requester's approval request is not waited for", func(t *testing.T) {
		b := newHoldBed(t)
		r := b.request(t, "oidc:someone-else")
		b.holdsUntilApproved(r.ID, false)
		resp, st := b.create(t, "bystander", nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, st.Message, "denied the request: held", "admission's own answer")
		assert.Len(t, b.u.seen(), 1)
	})
}

// TestHoldLimitReachedWhileTheWaitIsSetUp: a hold limit that passes while the broker still sets
// its wait up (NATS slow, the limit short) ends the hold as any hold limit does: a 403 naming the
// approval request, never a broken connection or a 503 blaming the broker.
func TestHoldLimitReachedWhileTheWaitIsSetUp(t *testing.T) {
	const id = "ap-aaaaaaaaaaaaaaaa"
	for _, tc := range []struct {
		name string
		err  func(ctx context.Context) error
	}{
		{"the context's error", func(ctx context.Context) error { return fmt.Errorf("%w: %w", approvals.ErrUnavailable, ctx.Err()) }},
		{"a NATS timeout", func(context.Context) error { return fmt.Errorf("%w: %w", approvals.ErrUnavailable, nats.ErrTimeout) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			u.setRespond(func(w http.ResponseWriter, _ *http.Request, _ []byte) bool {
				serving.WriteStatus(w, serving.FailureStatus(http.StatusForbidden, metav1.StatusReasonForbidden,
					`admission webhook "privileged.validate.gatehouse.dev" denied the request: held`, approvals.StatusDetails(id)))
				return true
			})
			pending := &approvals.Request{ID: id, Requester: trail.Identity{User: "oidc:slow-agent"}, State: approvals.StatePending,
				Operation:      trail.Operation{Verb: "create", Resource: "secrets", Namespace: "default", Name: "db"},
				ApproverGroups: []string{"gatehouse:approvers"}, Required: 1, Expires: time.Now().Add(time.Hour)}
			srv := newStubProxy(t, u, func(o *proxy.Options) { o.Approvals = unsetWait{r: pending, err: tc.err} })
			b := &holdBed{u: u, p: srv.URL, client: srv.Client()}
			resp, st := b.create(t, "slow-agent", map[string]string{proxy.HoldHeader: "50ms"})
			require.Equal(t, http.StatusForbidden, resp.StatusCode, st.Message)
			assert.Contains(t, st.Message, "held this request for 50ms and nobody decided it")
			assert.Contains(t, st.Message, "gatehouse approvals approve "+id)
			got, _ := approvals.IDFromStatus(&st)
			assert.Equal(t, id, got)
			assert.Len(t, u.seen(), 1, "not re-sent")
		})
	}
}

// unsetWait reads a pending approval request; its Wait gives up at the hold limit before it read
// the request again, as approvals.Broker.Wait does when the limit passes while it sets up its
// watch: with an error and no request.
type unsetWait struct {
	r   *approvals.Request
	err func(ctx context.Context) error
}

func (a unsetWait) Get(context.Context, string) (*approvals.Request, error) {
	r := *a.r
	return &r, nil
}

func (a unsetWait) Wait(ctx context.Context, _ string) (*approvals.Request, error) {
	<-ctx.Done()
	return nil, a.err(ctx)
}

// TestNoProxyApprovalHoldWithoutAdmission: a 403 that names no approval request is passed on as
// it is, and nothing is re-sent.
func TestNoProxyApprovalHoldWithoutAdmission(t *testing.T) {
	b := newHoldBed(t)
	var calls atomic.Int32
	b.u.setRespond(func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
		calls.Add(1)
		serving.WriteStatus(w, serving.FailureStatus(http.StatusForbidden, metav1.StatusReasonForbidden, "RBAC says no",
			&metav1.StatusDetails{Group: "gatehouse.dev", Kind: "approvalrequests", Name: "not-an-approval-id"}))
		return true
	})
	resp, st := b.create(t, "plain-agent", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, "RBAC says no", st.Message)
	assert.Equal(t, int32(1), calls.Load())
}

// requestRecord reads the trail.Request with auditID from the session's records.
func requestRecord(t *testing.T, session, auditID string) *trail.Request {
	t.Helper()
	cons, err := env.inspect.OrderedConsumer(t.Context(), trail.StreamTrail, jetstreamFilter(trail.SubjectSession(session)))
	require.NoError(t, err)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		msgs, err := cons.Fetch(20, jetstreamWait(time.Second))
		require.NoError(t, err)
		for m := range msgs.Messages() {
			for rec, err := range trail.DecodeAll(m.Data()) {
				require.NoError(t, err)
				if r, ok := rec.(*trail.Request); ok && r.AuditID == auditID {
					return r
				}
			}
		}
	}
	t.Fatalf("no request record with Audit-ID %s in session %s", auditID, session)
	return nil
}

// TestApprovalsAPIIsNotServed: the proxy cannot decide, so it does not serve the approvals API:
// a call, even a decision, is answered 404 with the console's URL and reaches neither a broker
// nor the API server.
func TestApprovalsAPIIsNotServed(t *testing.T) {
	tests := []struct {
		name, console string
		want          string
	}{
		{"with the console's URL", "https://console.example.com/", "served by gatehouse console at https://console.example.com/gatehouse/v1/approvals"},
		{"without it", "", "ask a Gatehouse administrator for its URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			var forwarded atomic.Int32
			u.setRespond(func(http.ResponseWriter, *http.Request, []byte) bool { forwarded.Add(1); return false })
			srv := newStubProxy(t, u, func(o *proxy.Options) { o.ConsoleURL = tc.console })
			for _, call := range []struct{ method, path string }{
				{http.MethodGet, approvals.APIPrefix},
				{http.MethodGet, approvals.APIPrefix + "?watch=true"},
				{http.MethodPost, approvals.APIPrefix + "/ap-aaaaaaaaaaaaaaaa/approve"},
			} {
				req, err := http.NewRequest(call.method, srv.URL+call.path, strings.NewReader(`{"reason":"x"}`))
				require.NoError(t, err)
				req.Header.Set("Authorization", "Bearer "+token(t, "approver", nil))
				resp, err := srv.Client().Do(req)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, http.StatusNotFound, resp.StatusCode, call.path)
				assert.Contains(t, string(body), tc.want)
				assert.Equal(t, strings.TrimSuffix(tc.console, "/"), resp.Header.Get(approvals.ConsoleHeader))
			}
			assert.Zero(t, forwarded.Load(), "nothing reaches the API server")
		})
	}
}
