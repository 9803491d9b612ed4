package approvals_test

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

var natsServer *testbed.NATS

// testKey is the approval key of the tests.
var testKey = []byte("approvals-test-approval-key-0123456789")

var testFingerprints = func() *approvals.Fingerprinter {
	f, err := approvals.NewFingerprinter([]byte("approvals-test-fingerprint-key"))
	if err != nil {
		panic(err)
	}
	return f
}()

func TestMain(m *testing.M) {
	var err error
	if natsServer, err = testbed.StartNATS(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	natsServer.Stop()
	os.Exit(code)
}

func newBroker(t testing.TB) (*approvals.Broker, jetstream.JetStream) {
	t.Helper()
	return newBrokerWithClock(t, clock.RealClock{})
}

// newBrokerWithClock returns a broker whose deadlines follow clk.
func newBrokerWithClock(t testing.TB, clk clock.Clock) (*approvals.Broker, jetstream.JetStream) {
	t.Helper()
	nc, err := natsServer.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	pub, err := trail.NewPublisher(nc, trail.PublisherOptions{})
	require.NoError(t, err)
	b, err := approvals.New(js, approvals.Options{Key: testKey, Recorder: pub, Source: "test", Clock: clk})
	require.NoError(t, err)
	return b, js
}

var (
	agent = trail.Identity{User: "agent", Groups: []string{"agents"}}
	alice = trail.Identity{User: "alice", Groups: []string{"platform-admins"}}
	bob   = trail.Identity{User: "bob", Groups: []string{"platform-admins", "dev"}}
	eve   = trail.Identity{User: "eve", Groups: []string{"dev"}}
)

func spec(t testing.TB, required int) approvals.Spec {
	op := trail.Operation{Verb: "create", APIGroup: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", Name: "agent-admin"}
	fp, err := testFingerprints.Fingerprint(agent.User, op, []byte(`{"kind":"ClusterRoleBinding","metadata":{"name":"agent-admin"},"roleRef":{"name":"cluster-admin"}}`))
	require.NoError(t, err)
	return approvals.Spec{
		Requester: agent, SessionID: "s-1", Operation: op, Fingerprint: fp,
		Policy:         trail.Policy{Policy: "default", Rule: "escalating-bindings", Action: "requireApproval"},
		ApproverGroups: []string{"platform-admins"}, Required: required, GrantTTL: time.Minute,
		Path: approvals.PathAdmission, Timeout: time.Minute,
	}
}

func TestDecisions(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()

	t.Run("approve issues a single-use grant", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		assert.Equal(t, approvals.StatePending, r.State)
		r, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "change ticket 42")
		require.NoError(t, err)
		assert.Equal(t, approvals.StateApproved, r.State)
		require.NotNil(t, r.Grant)

		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "audit-1")
		require.NoError(t, err)
		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "audit-2")
		require.ErrorIs(t, err, approvals.ErrNoGrant, "a grant is used once")
	})
	t.Run("self-approval and outsiders are refused", func(t *testing.T) {
		s := spec(t, 1)
		s.ApproverGroups = []string{"platform-admins", "agents"}
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, agent, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrNotAllowed)
		_, err = b.Decide(ctx, r.ID, eve, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrNotAllowed)
		got, err := b.Get(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approvals.StatePending, got.State)
		assert.Empty(t, got.Decisions)
	})
	t.Run("two of the group", func(t *testing.T) {
		r, err := b.Create(ctx, spec(t, 2))
		require.NoError(t, err)
		r, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		assert.Equal(t, approvals.StatePending, r.State)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrNotAllowed, "one vote per approver")
		r, err = b.Decide(ctx, r.ID, bob, approvals.Approve, "")
		require.NoError(t, err)
		assert.Equal(t, approvals.StateApproved, r.State)
		assert.Equal(t, []string{"alice", "bob"}, r.Approvers())
	})
	t.Run("one deny is final", func(t *testing.T) {
		r, err := b.Create(ctx, spec(t, 2))
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		r, err = b.Decide(ctx, r.ID, bob, approvals.Deny, "not during the freeze")
		require.NoError(t, err)
		assert.Equal(t, approvals.StateDenied, r.State)
		assert.Equal(t, "bob", r.DeniedBy().Approver)
		_, err = b.Decide(ctx, r.ID, bob, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrFinal)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Deny, "")
		require.ErrorIs(t, err, approvals.ErrFinal, "only the decision that made it final may be sent again")
		again, err := b.Decide(ctx, r.ID, bob, approvals.Deny, "a retry")
		require.NoError(t, err, "the same decision again: a retry after a lost answer")
		assert.Equal(t, r.Decisions, again.Decisions, "no second decision")
		_, err = b.Consume(ctx, r.ID, agent.User, r.Fingerprint, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant)
	})
	t.Run("an approval sent again", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		r, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "change 1")
		require.NoError(t, err)
		again, err := b.Decide(ctx, r.ID, alice, approvals.Approve, "change 1")
		require.NoError(t, err)
		assert.Equal(t, approvals.StateApproved, again.State)
		assert.Equal(t, r.Decisions, again.Decisions)
		_, err = b.Decide(ctx, r.ID, bob, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrFinal, "another approver is still told it is decided")
		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "change 1")
		require.NoError(t, err, "after the grant's use too")
		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant, "sending the approval again grants nothing more")
	})
	t.Run("a different operation cannot use the grant", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		other, err := testFingerprints.Fingerprint(agent.User, s.Operation, []byte(`{"kind":"ClusterRoleBinding","metadata":{"name":"agent-admin"},"roleRef":{"name":"view"}}`))
		require.NoError(t, err)
		_, err = b.Consume(ctx, r.ID, agent.User, other, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant)
		_, err = b.Consume(ctx, r.ID, "mallory", s.Fingerprint, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant, "the grant is the requester's")
		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
		require.NoError(t, err, "refusals do not use up the grant")
	})
	t.Run("unknown and malformed IDs", func(t *testing.T) {
		_, err := b.Get(ctx, "ap-aaaaaaaaaaaaaaaa")
		require.ErrorIs(t, err, approvals.ErrNotFound)
		_, err = b.Get(ctx, "req.>")
		require.ErrorIs(t, err, approvals.ErrNotFound)
	})
}

// waitInBackground calls Wait for id and returns once it waits, with the channel its result
// arrives on.
func waitInBackground(t *testing.T, b *approvals.Broker, fc *testingclock.FakeClock, id string) <-chan *approvals.Request {
	t.Helper()
	waited := make(chan *approvals.Request, 1)
	go func() {
		got, err := b.Wait(t.Context(), id)
		assert.NoError(t, err)
		waited <- got
	}()
	require.Eventually(t, fc.HasWaiters, 10*time.Second, time.Millisecond, "Wait sets its deadline timer")
	return waited
}

// TestExpiry advances a fake clock past a pending request's deadline and past a grant's TTL.
func TestExpiry(t *testing.T) {
	fc := testingclock.NewFakeClock(time.Now())
	b, _ := newBrokerWithClock(t, fc)
	ctx := t.Context()

	s := spec(t, 1)
	r, err := b.Create(ctx, s)
	require.NoError(t, err)
	waited := waitInBackground(t, b, fc, r.ID)
	fc.Step(s.Timeout + time.Second)
	got := <-waited
	assert.Equal(t, approvals.StateExpired, got.State)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.ErrorIs(t, err, approvals.ErrFinal)

	r, err = b.Create(ctx, s)
	require.NoError(t, err)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.NoError(t, err)
	fc.Step(s.GrantTTL + time.Second)
	_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
	require.ErrorIs(t, err, approvals.ErrNoGrant, "an unused grant expires")
}

// TestWaitSeesTheDecision: a waiter wakes up on the decision, not on its deadline (the fake
// clock never moves).
func TestWaitSeesTheDecision(t *testing.T) {
	fc := testingclock.NewFakeClock(time.Now())
	b, _ := newBrokerWithClock(t, fc)
	ctx := t.Context()
	r, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	waited := waitInBackground(t, b, fc, r.ID)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.NoError(t, err)
	select {
	case got := <-waited:
		assert.Equal(t, approvals.StateApproved, got.State)
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not see the decision")
	}
}

func TestConcurrentConsumersUseTheGrantOnce(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	s := spec(t, 1)
	r, err := b.Create(ctx, s)
	require.NoError(t, err)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.NoError(t, err)
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := b.Consume(ctx, r.ID, agent.User, s.Fingerprint, fmt.Sprint("audit-", i)); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
}

func TestSurvivesNATSRestart(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	r, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	require.NoError(t, natsServer.Restart())
	require.Eventually(t, func() bool {
		_, err := b.Get(ctx, r.ID)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	got, err := b.Decide(ctx, r.ID, alice, approvals.Approve, "after restart")
	require.NoError(t, err)
	assert.Equal(t, approvals.StateApproved, got.State)
}

func TestEventsAreRecorded(t *testing.T) {
	b, js := newBroker(t)
	ctx := t.Context()
	r, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "ok")
	require.NoError(t, err)
	_, err = b.Consume(ctx, r.ID, agent.User, r.Fingerprint, "audit-x")
	require.NoError(t, err)

	cons, err := js.OrderedConsumer(ctx, trail.StreamTrail, jetstream.OrderedConsumerConfig{FilterSubjects: []string{trail.SubjectAll(trail.KindApproval)}})
	require.NoError(t, err)
	var events []trail.ApprovalEvent
	for range 3 {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			rec, err := trail.Decode(m.Data())
			require.NoError(t, err)
			if a := rec.(*trail.Approval); a.ApprovalID == r.ID {
				events = append(events, a.Event)
				if a.Event == trail.ApprovalGrantUsed {
					assert.Equal(t, "audit-x", a.AdmissionUID)
				}
			}
		}
	}
	assert.Equal(t, []trail.ApprovalEvent{trail.ApprovalRequested, trail.ApprovalApproved, trail.ApprovalGrantUsed}, events)
}

func TestFingerprint(t *testing.T) {
	op := trail.Operation{Verb: "CREATE", APIGroup: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", Name: "b"}
	base := `{"kind":"ClusterRoleBinding","metadata":{"name":"b"},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"alice"}]}`
	fp := func(user string, op trail.Operation, obj string) string {
		t.Helper()
		f, err := testFingerprints.Fingerprint(user, op, []byte(obj))
		require.NoError(t, err)
		return f
	}
	want := fp("agent", op, base)
	same := []string{
		`{"roleRef":{"name":"view"},"kind":"ClusterRoleBinding","subjects":[{"name":"alice","kind":"User"}],"metadata":{"name":"b"}}`,
		`{"kind":"ClusterRoleBinding","metadata":{"name":"b","resourceVersion":"9","uid":"u","creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{}],"annotations":{"gatehouse.dev/session-id":"s"}},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"alice"}],"status":{"x":1}}`,
	}
	for _, s := range same {
		assert.Equal(t, want, fp("agent", op, s), "volatile fields and key order do not matter: %s", s)
	}
	different := map[string]string{
		"role":    `{"kind":"ClusterRoleBinding","metadata":{"name":"b"},"roleRef":{"name":"cluster-admin"},"subjects":[{"kind":"User","name":"alice"}]}`,
		"subject": `{"kind":"ClusterRoleBinding","metadata":{"name":"b"},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"agent"}]}`,
		"label":   `{"kind":"ClusterRoleBinding","metadata":{"name":"b","labels":{"x":"y"}},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"alice"}]}`,
	}
	for name, s := range different {
		assert.NotEqual(t, want, fp("agent", op, s), name)
	}
	assert.NotEqual(t, want, fp("bob", op, base), "the requester is bound")
	op2 := op
	op2.Verb = "delete"
	assert.NotEqual(t, want, fp("agent", op2, base))
	_, err := testFingerprints.Fingerprint("agent", op, []byte(`[1]`))
	require.Error(t, err)

	// Annotations are bound, except the two the mutating webhook stamps on every gateway write.
	unbound := `{"kind":"ClusterRoleBinding","metadata":{"name":"b","annotations":{"gatehouse.dev/approval-id":"ap-1","gatehouse.dev/session-id":"s"}},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"alice"}]}`
	assert.Equal(t, want, fp("agent", op, unbound))
	for _, ann := range []string{`{"note":"x"}`, `{"gatehouse.dev/owner":"x"}`, `{"kubectl.kubernetes.io/last-applied-configuration":"{}"}`} {
		obj := `{"kind":"ClusterRoleBinding","metadata":{"name":"b","annotations":` + ann + `},"roleRef":{"name":"view"},"subjects":[{"kind":"User","name":"alice"}]}`
		assert.NotEqual(t, want, fp("agent", op, obj), "annotations %s are bound", ann)
	}

	// A patch and an update of the same object are the same operation.
	pod := `{"kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c"}]},"status":{"phase":"Running"}}`
	update := trail.Operation{Verb: "update", Resource: "pods", Namespace: "shop", Name: "web"}
	patch := update
	patch.Verb = "patch"
	assert.Equal(t, fp("agent", update, pod), fp("agent", patch, pod))
	// The status is bound where the call can change it: the status subresource.
	failed := `{"kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c"}]},"status":{"phase":"Failed"}}`
	assert.Equal(t, fp("agent", update, pod), fp("agent", update, failed), "a main-resource update cannot change the status")
	status := update
	status.Subresource = "status"
	assert.NotEqual(t, fp("agent", status, pod), fp("agent", status, failed), "one approved status update does not admit another")
}

// TestSelfApprovalThroughImpersonation: the verified user behind a client's impersonation is a
// requester too, and an approver who impersonates is still themselves.
func TestSelfApprovalThroughImpersonation(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	// alice (an approver) sent the operation as bob.
	s := spec(t, 1)
	s.Requester = trail.Identity{User: "bob", Groups: []string{"dev"}}
	s.OriginalUser = alice.User
	r, err := b.Create(ctx, s)
	require.NoError(t, err)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.ErrorIs(t, err, approvals.ErrNotAllowed, "alice approving what she sent as bob")

	// agent sent it itself, and approves as alice (say it may impersonate her).
	r, err = b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	aliceByAgent := alice
	aliceByAgent.Extra = map[string][]string{identity.ExtraOriginalUser: {agent.User}}
	_, err = b.Decide(ctx, r.ID, aliceByAgent, approvals.Approve, "")
	require.ErrorIs(t, err, approvals.ErrNotAllowed, "the agent approving its own request as alice")

	got, err := b.Decide(ctx, r.ID, bob, approvals.Approve, "")
	require.NoError(t, err)
	assert.Equal(t, approvals.StateApproved, got.State)
}

func TestVisibility(t *testing.T) {
	r := &approvals.Request{Requester: agent, OriginalUser: "dave", ApproverGroups: []string{"platform-admins"}}
	for _, tt := range []struct {
		who  trail.Identity
		want bool
	}{
		{agent, true},
		{trail.Identity{User: "dave"}, true},
		{alice, true},
		{eve, false},
		{trail.Identity{User: "agent-2", Groups: []string{"agents"}}, false},
		{trail.Identity{User: "bob-as-someone", Extra: map[string][]string{identity.ExtraOriginalUser: {"agent"}}}, true},
	} {
		assert.Equal(t, tt.want, r.VisibleTo(tt.who), "%+v", tt.who)
	}
}

func TestMessages(t *testing.T) {
	r := &approvals.Request{
		ID: "ap-aaaaaaaaaaaaaaaa", State: approvals.StatePending, Reason: "rotate the leaked key", Required: 1,
		ApproverGroups: []string{"gatehouse:approvers"}, GrantTTL: 15 * time.Minute, Expires: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		Policy: trail.Policy{Policy: "gatehouse-approvals", Rule: "secret-changes", Message: `CREATE secrets "db" requires approval: Secrets hold credentials. Approvers: members of gatehouse:approvers; 1 approval(s) needed; an approval is valid for 15m0s. [AccessPolicy "gatehouse-approvals", rule "secret-changes"]`},
	}
	pending := approvals.PendingMessage(r, "https://gatehouse.example.com/")
	for _, want := range []string{r.ID, "`gatehouse approvals approve " + r.ID + "`", "https://gatehouse.example.com/approvals/" + r.ID,
		`rule "secret-changes"`, "gatehouse:approvers", `"rotate the leaked key"`, "send the same request again within 15m0s"} {
		assert.Contains(t, pending, want)
	}
	r.State = approvals.StateDenied
	r.Decisions = []approvals.Decision{{Approver: "alice", Verdict: approvals.Deny, Reason: "use the vault"}}
	r2 := *r
	r2.State, r2.Decisions = approvals.StateExpired, nil
	for _, msg := range []string{approvals.DenialMessage(r), approvals.DenialMessage(&r2)} {
		for _, want := range []string{r.ID, `rule "secret-changes"`, "gatehouse:approvers", `"rotate the leaked key"`} {
			assert.Contains(t, msg, want, "every denial and expiry names the rule, the reason and the approvers")
		}
	}
	assert.Contains(t, approvals.DenialMessage(r), "denied by alice: use the vault")
	assert.Contains(t, approvals.DenialMessage(&r2), "Expired")

	id, ok := approvals.IDFromStatus(&metav1.Status{Details: approvals.StatusDetails(r.ID)})
	assert.True(t, ok)
	assert.Equal(t, r.ID, id)
	for _, d := range []*metav1.StatusDetails{nil, {Group: "gatehouse.dev", Kind: "approvalrequests", Name: "not-an-id"},
		{Group: "other.dev", Kind: "approvalrequests", Name: r.ID}, {Group: "gatehouse.dev", Kind: "pods", Name: r.ID}} {
		_, ok := approvals.IDFromStatus(&metav1.Status{Details: d})
		assert.False(t, ok, "%+v", d)
	}
}

func TestList(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	r1, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	r2, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	_, err = b.Decide(ctx, r2.ID, alice, approvals.Deny, "")
	require.NoError(t, err)

	pending, err := b.List(ctx, approvals.StatePending)
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, r := range pending {
		ids[r.ID] = true
		assert.Equal(t, approvals.StatePending, r.State)
	}
	assert.True(t, ids[r1.ID])
	assert.False(t, ids[r2.ID])
	all, err := b.List(ctx)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(all), 2)
}
