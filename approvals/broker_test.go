package approvals_test

import (
	"context"
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

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

var natsServer *testbed.NATS

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
	nc, err := nats.Connect(natsServer.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, trail.EnsureStreams(ctx, js, trail.StreamOptions{}))
	pub, err := trail.NewPublisher(nc, trail.PublisherOptions{})
	require.NoError(t, err)
	b, err := approvals.New(ctx, js, approvals.Options{Recorder: pub, Source: "test"})
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
	op := trail.Operation{Verb: "CREATE", APIGroup: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", Name: "agent-admin"}
	fp, err := testFingerprints.Fingerprint(agent.User, op, []byte(`{"kind":"ClusterRoleBinding","metadata":{"name":"agent-admin"},"roleRef":{"name":"cluster-admin"}}`))
	require.NoError(t, err)
	return approvals.Spec{
		Requester: agent, SessionID: "s-1", Operation: op, Fingerprint: fp,
		Policy:         trail.Policy{Policy: "default", Rule: "escalating-bindings", Action: "requireApproval"},
		ApproverGroups: []string{"platform-admins"}, Required: required, GrantTTL: time.Minute,
		Path: approvals.PathProxy, Timeout: time.Minute,
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
		_, err = b.Consume(ctx, r.ID, agent.User, r.Fingerprint, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant)
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
	t.Run("expiry", func(t *testing.T) {
		s := spec(t, 1)
		s.Timeout = 300 * time.Millisecond
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		waited, err := b.Wait(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approvals.StateExpired, waited.State)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.ErrorIs(t, err, approvals.ErrFinal)

		s = spec(t, 1)
		s.GrantTTL = 200 * time.Millisecond
		r, err = b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		time.Sleep(300 * time.Millisecond)
		_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
		require.ErrorIs(t, err, approvals.ErrNoGrant, "an unused grant expires")
	})
	t.Run("unknown and malformed IDs", func(t *testing.T) {
		_, err := b.Get(ctx, "ap-aaaaaaaaaaaaaaaa")
		require.ErrorIs(t, err, approvals.ErrNotFound)
		_, err = b.Get(ctx, "req.>")
		require.ErrorIs(t, err, approvals.ErrNotFound)
	})
}

func TestWaitSeesTheDecision(t *testing.T) {
	b, _ := newBroker(t)
	ctx := t.Context()
	r, err := b.Create(ctx, spec(t, 1))
	require.NoError(t, err)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = b.Decide(context.Background(), r.ID, alice, approvals.Approve, "")
	}()
	start := time.Now()
	got, err := b.Wait(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, approvals.StateApproved, got.State)
	assert.Less(t, time.Since(start), 5*time.Second)
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
	op2.Verb = "DELETE"
	assert.NotEqual(t, want, fp("agent", op2, base))
	_, err := testFingerprints.Fingerprint("agent", op, []byte(`[1]`))
	require.Error(t, err)
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
