package approvals_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// The tests of this file write approval requests straight to NATS, as anyone who can write the
// bucket could (a component's leaked credentials, an administrator restoring a stream): what the
// broker reads back with the approval key fails its integrity check, and admission and the
// console refuse it.

// bucket returns the approvals bucket as the attacker sees it.
func bucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), approvals.Bucket)
	require.NoError(t, err)
	return kv
}

type envelope struct {
	MAC  string          `json:"mac"`
	Data json.RawMessage `json:"data"`
}

func read(t *testing.T, kv jetstream.KeyValue, key string) envelope {
	t.Helper()
	e, err := kv.Get(t.Context(), key)
	require.NoError(t, err)
	var env envelope
	require.NoError(t, json.Unmarshal(e.Value(), &env))
	return env
}

func write(t *testing.T, kv jetstream.KeyValue, key string, env envelope) {
	t.Helper()
	b, err := json.Marshal(env)
	require.NoError(t, err)
	_, err = kv.Put(t.Context(), key, b)
	require.NoError(t, err)
}

// refusedEverywhere checks that the broker with the key refuses request id, for reading,
// deciding and using its grant, and leaves it out of lists and watches.
func refusedEverywhere(t *testing.T, b *approvals.Broker, id, fingerprint string) {
	t.Helper()
	ctx := t.Context()
	_, err := b.Get(ctx, id)
	assert.ErrorIs(t, err, approvals.ErrTampered, "Get")
	_, err = b.Decide(ctx, id, alice, approvals.Approve, "")
	assert.ErrorIs(t, err, approvals.ErrTampered, "Decide")
	_, err = b.Consume(ctx, id, agent.User, fingerprint, "uid")
	assert.ErrorIs(t, err, approvals.ErrTampered, "Consume")
	list, err := b.List(ctx)
	require.NoError(t, err)
	for _, r := range list {
		assert.NotEqual(t, id, r.ID, "List leaves it out")
	}
	w, err := b.Watch(ctx)
	require.NoError(t, err)
	defer func() { _ = w.Stop() }()
	for c := range w.Changes() {
		if c == nil {
			break
		}
		if c.Request != nil {
			assert.NotEqual(t, id, c.Request.ID, "Watch never delivers it")
		}
		if c.ID == id {
			assert.ErrorIs(t, c.Err, approvals.ErrTampered)
		}
	}
}

func TestForgedApprovals(t *testing.T) {
	b, js := newBroker(t)
	kv := bucket(t, js)
	ctx := t.Context()

	t.Run("a decision without the key", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		exp := time.Now().Add(time.Hour)
		data, _ := json.Marshal(map[string]any{"id": r.ID, "state": "Approved", "grantExpires": exp, "seq": 1,
			"decisions": []approvals.Decision{{Approver: "alice", Verdict: approvals.Approve, Time: time.Now()}}})
		write(t, kv, "dec."+r.ID, envelope{MAC: base64.StdEncoding.EncodeToString(make([]byte, 32)), Data: data})
		refusedEverywhere(t, b, r.ID, s.Fingerprint)
	})
	t.Run("a request without the key", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		env := read(t, kv, "req."+r.ID)
		var body map[string]any
		require.NoError(t, json.Unmarshal(env.Data, &body))
		body["approverGroups"] = []string{"agents"} // the requester's own group
		env.Data, _ = json.Marshal(body)
		write(t, kv, "req."+r.ID, env)
		refusedEverywhere(t, b, r.ID, s.Fingerprint)
	})
	t.Run("a decision moved from another request", func(t *testing.T) {
		s := spec(t, 1)
		approved, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, approved.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		other, err := b.Create(ctx, s)
		require.NoError(t, err)
		env := read(t, kv, "dec."+approved.ID)
		// As it is, and with the other request's ID in it.
		write(t, kv, "dec."+other.ID, env)
		refusedEverywhere(t, b, other.ID, s.Fingerprint)
		var body map[string]any
		require.NoError(t, json.Unmarshal(env.Data, &body))
		body["id"] = other.ID
		env.Data, _ = json.Marshal(body)
		write(t, kv, "dec."+other.ID, env)
		refusedEverywhere(t, b, other.ID, s.Fingerprint)
	})
	t.Run("a MAC replayed from another state", func(t *testing.T) {
		s := spec(t, 2)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "one of two")
		require.NoError(t, err)
		env := read(t, kv, "dec."+r.ID)
		var body map[string]any
		require.NoError(t, json.Unmarshal(env.Data, &body))
		require.Equal(t, "Pending", body["state"])
		body["state"], body["grantExpires"] = "Approved", time.Now().Add(time.Hour)
		env.Data, _ = json.Marshal(body)
		write(t, kv, "dec."+r.ID, env)
		refusedEverywhere(t, b, r.ID, s.Fingerprint)
	})
	t.Run("a request that is not an envelope", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		raw, _ := json.Marshal(approvals.Request{ID: r.ID, Requester: agent, Fingerprint: s.Fingerprint, State: approvals.StateApproved,
			ApproverGroups: s.ApproverGroups, Required: 1, Grant: &approvals.Grant{Expires: time.Now().Add(time.Hour)}})
		_, err = kv.Put(ctx, "req."+r.ID, raw)
		require.NoError(t, err)
		refusedEverywhere(t, b, r.ID, s.Fingerprint)
	})
	t.Run("a forged use of a grant", func(t *testing.T) {
		s := spec(t, 1)
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
		require.NoError(t, err)
		data, _ := json.Marshal(map[string]any{"id": r.ID, "usedAt": time.Now()})
		write(t, kv, "use."+r.ID, envelope{MAC: base64.StdEncoding.EncodeToString(make([]byte, 32)), Data: data})
		refusedEverywhere(t, b, r.ID, s.Fingerprint)
	})
	t.Run("an index pointing at another request", func(t *testing.T) {
		s := spec(t, 1)
		approved, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.Decide(ctx, approved.ID, alice, approvals.Approve, "bind alice to view")
		require.NoError(t, err)
		wanted := spec(t, 1)
		wanted.Operation.Name = "agent-cluster-admin"
		wanted.Fingerprint, err = testFingerprints.Fingerprint(agent.User, wanted.Operation, []byte(`{"roleRef":{"name":"cluster-admin"}}`))
		require.NoError(t, err)
		_, err = kv.Put(ctx, "fp."+wanted.Fingerprint, []byte(approved.ID))
		require.NoError(t, err)
		found, err := b.FindByFingerprint(ctx, wanted.Fingerprint)
		require.NoError(t, err)
		_, err = b.Consume(ctx, found.ID, agent.User, wanted.Fingerprint, "uid")
		require.ErrorIs(t, err, approvals.ErrNoGrant, "the grant admits only the operation it approved")
	})
}

// TestReaderWithoutKey: the proxy's broker reads and waits, and cannot change anything.
func TestReaderWithoutKey(t *testing.T) {
	b, js := newBroker(t)
	reader, err := approvals.New(js, approvals.Options{Source: "proxy"})
	require.NoError(t, err)
	ctx := t.Context()
	s := spec(t, 1)
	r, err := b.Create(ctx, s)
	require.NoError(t, err)
	got, err := reader.Get(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, r.ID, got.ID)
	for name, op := range map[string]func(context.Context) error{
		"Create": func(ctx context.Context) error { _, err := reader.Create(ctx, s); return err },
		"Decide": func(ctx context.Context) error {
			_, err := reader.Decide(ctx, r.ID, alice, approvals.Approve, "")
			return err
		},
		"Consume": func(ctx context.Context) error {
			_, err := reader.Consume(ctx, r.ID, agent.User, s.Fingerprint, "")
			return err
		},
		"Expire": func(ctx context.Context) error { _, err := reader.Expire(ctx, r.ID); return err },
		"Index":  func(ctx context.Context) error { return reader.Index(ctx, r) },
	} {
		assert.ErrorIs(t, op(ctx), approvals.ErrReadOnly, name)
	}
	_, err = approvals.New(js, approvals.Options{Key: []byte("short"), Recorder: nopRecorder{}})
	assert.Error(t, err, "a short key is refused")
}

type nopRecorder struct{}

func (nopRecorder) PublishSync(context.Context, trail.Record) error { return nil }

// TestDeletedRecordsDoNotReopen deletes a used grant's use record and a denied request's
// decisions, as the NATS credentials of the webhook and of the console allow (a delete marker
// on the key): the grant is not used again, and the request cannot be decided again.
func TestDeletedRecordsDoNotReopen(t *testing.T) {
	b, js := newBroker(t)
	ctx := t.Context()
	kv := bucket(t, js)

	s := spec(t, 1)
	r, err := b.Create(ctx, s)
	require.NoError(t, err)
	_, err = b.Decide(ctx, r.ID, alice, approvals.Approve, "")
	require.NoError(t, err)
	_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "audit-1")
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, approvals.PrefixUse+"."+r.ID))
	_, err = b.Consume(ctx, r.ID, agent.User, s.Fingerprint, "audit-2")
	assert.ErrorIs(t, err, approvals.ErrNoGrant, "a grant is used once, its use record deleted or not")

	denied, err := b.Create(ctx, spec(t, 2))
	require.NoError(t, err)
	_, err = b.Decide(ctx, denied.ID, alice, approvals.Deny, "no")
	require.NoError(t, err)
	require.NoError(t, kv.Delete(ctx, approvals.PrefixDecision+"."+denied.ID))
	_, err = b.Decide(ctx, denied.ID, bob, approvals.Approve, "")
	require.Error(t, err, "a request whose decisions were deleted is not decided again")
	_, err = b.Consume(ctx, denied.ID, agent.User, denied.Fingerprint, "audit-3")
	assert.ErrorIs(t, err, approvals.ErrNoGrant)
}
