package approvals_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/trail"
)

var secretsRule = trail.Policy{Policy: "default", Rule: "secret-changes", Action: "requireApproval"}

// scopedSpec is a held Secret create whose rule offers a scope.
func scopedSpec(t testing.TB, required int, session string) approvals.Spec {
	op := trail.Operation{Verb: "create", APIVersion: "v1", Resource: "secrets", Namespace: "shop", Name: "sh.helm.release.v1.shop.v1"}
	fp, err := testFingerprints.Fingerprint(agent.User, op, []byte(`{"kind":"Secret","metadata":{"name":"sh.helm.release.v1.shop.v1"}}`))
	require.NoError(t, err)
	return approvals.Spec{
		Requester: agent, SessionID: "s-1", Operation: op, Fingerprint: fp, Policy: secretsRule,
		ApproverGroups: []string{"platform-admins"}, Required: required, GrantTTL: time.Minute,
		Path: approvals.PathAdmission, Timeout: time.Minute,
		ScopeOffer: &approvals.ScopeOffer{Verbs: []string{"create", "update", "patch", "delete"}, Resources: []string{"secrets"},
			MaxDuration: metav1.Duration{Duration: 30 * time.Minute}, Namespace: "shop", Session: session},
	}
}

func secretOp(verb, ns string) trail.Operation {
	return trail.Operation{Verb: verb, APIVersion: "v1", Resource: "secrets", Namespace: ns, Name: "x"}
}

func TestScopedApprovals(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	b, js := newBrokerWithClock(t, clk)
	ctx := t.Context()
	// A session of its own, so that grants of an earlier run against the same NATS server
	// are not found.
	session := "gateway:" + rand.Text()

	create := func(t *testing.T, required int) *approvals.Request {
		t.Helper()
		r, err := b.Create(ctx, scopedSpec(t, required, session))
		require.NoError(t, err)
		require.NoError(t, b.IndexScope(ctx, r))
		return r
	}
	scoped := func(t *testing.T) []*approvals.Request {
		t.Helper()
		grants, err := b.ScopedGrants(ctx, session, "shop", secretsRule)
		require.NoError(t, err)
		return grants
	}

	t.Run("a scope admits the session's operations within it, and is not used up", func(t *testing.T) {
		r := create(t, 1)
		assert.Empty(t, scoped(t), "nothing is granted before approval")
		r, err := b.DecideScoped(ctx, r.ID, alice, approvals.Approve, "helm upgrade", &approvals.ScopeChoice{Duration: metav1.Duration{Duration: 10 * time.Minute}})
		require.NoError(t, err)
		require.NotNil(t, r.Grant.Scope)
		assert.Equal(t, []string{"create", "update", "patch", "delete"}, r.Grant.Scope.Verbs, "empty choices take the offer")
		assert.WithinDuration(t, clk.Now().Add(10*time.Minute), r.Grant.Expires, time.Second)

		grants := scoped(t)
		require.Len(t, grants, 1)
		for i, verb := range []string{"create", "update", "update", "patch", "delete"} {
			require.NoError(t, b.UseScope(ctx, grants[0], agent.User, session, secretOp(verb, "shop"), "uid-"+string(rune('a'+i))))
		}
		got, err := b.Get(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approvals.StateApproved, got.State, "uses do not use it up")

		for _, tc := range []struct {
			name      string
			requester string
			session   string
			op        trail.Operation
		}{
			{"another namespace", agent.User, session, secretOp("create", "other")},
			{"another resource", agent.User, session, trail.Operation{Verb: "create", APIVersion: "v1", Resource: "configmaps", Namespace: "shop"}},
			{"another session", agent.User, "gateway:s-2", secretOp("create", "shop")},
			{"another requester", "eve", session, secretOp("create", "shop")},
			{"a verb not granted", agent.User, session, secretOp("deletecollection", "shop")},
		} {
			err := b.UseScope(ctx, grants[0], tc.requester, tc.session, tc.op, "uid-x")
			assert.ErrorIs(t, err, approvals.ErrNoGrant, tc.name)
		}

		clk.Step(11 * time.Minute)
		assert.Empty(t, scoped(t), "the scope expires by itself")
		require.ErrorIs(t, b.UseScope(ctx, grants[0], agent.User, session, secretOp("create", "shop"), "uid-late"), approvals.ErrNoGrant)
		got, err = b.Get(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approvals.StateExpired, got.State)
	})

	t.Run("choices outside the offer are refused", func(t *testing.T) {
		r := create(t, 1)
		for name, c := range map[string]approvals.ScopeChoice{
			"a verb not offered":           {Verbs: []string{"create", "deletecollection"}},
			"a resource not offered":       {Resources: []string{"secrets", "configmaps"}},
			"longer than offered":          {Duration: metav1.Duration{Duration: time.Hour}},
			"not covering the held create": {Verbs: []string{"update"}},
		} {
			_, err := b.DecideScoped(ctx, r.ID, alice, approvals.Approve, "", &c)
			assert.ErrorIs(t, err, approvals.ErrInvalidInput, name)
		}
		_, err := b.DecideScoped(ctx, r.ID, alice, approvals.Deny, "", &approvals.ScopeChoice{})
		assert.ErrorIs(t, err, approvals.ErrInvalidInput, "a denial grants no scope")
		_, err = b.DecideScoped(ctx, r.ID, agent, approvals.Approve, "", &approvals.ScopeChoice{})
		assert.ErrorIs(t, err, approvals.ErrNotAllowed, "nobody approves their own request, scoped or not")
		got, err := b.Get(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, approvals.StatePending, got.State)
	})

	t.Run("a rule without an offer grants no scope", func(t *testing.T) {
		s := scopedSpec(t, 1, session)
		s.ScopeOffer = nil
		r, err := b.Create(ctx, s)
		require.NoError(t, err)
		_, err = b.DecideScoped(ctx, r.ID, alice, approvals.Approve, "", &approvals.ScopeChoice{})
		assert.ErrorIs(t, err, approvals.ErrInvalidInput)
	})

	t.Run("two approvers: the grant is what both chose; an exact approval makes it exact", func(t *testing.T) {
		r := create(t, 2)
		_, err := b.DecideScoped(ctx, r.ID, alice, approvals.Approve, "", &approvals.ScopeChoice{Verbs: []string{"create", "update"}})
		require.NoError(t, err)
		r, err = b.DecideScoped(ctx, r.ID, bob, approvals.Approve, "", &approvals.ScopeChoice{Verbs: []string{"create", "delete"},
			Duration: metav1.Duration{Duration: 5 * time.Minute}})
		require.NoError(t, err)
		require.NotNil(t, r.Grant.Scope)
		assert.Equal(t, []string{"create"}, r.Grant.Scope.Verbs)
		assert.Equal(t, 5*time.Minute, r.Grant.Scope.Duration.Duration)

		r2 := create(t, 2)
		_, err = b.DecideScoped(ctx, r2.ID, alice, approvals.Approve, "", &approvals.ScopeChoice{})
		require.NoError(t, err)
		r2, err = b.Decide(ctx, r2.ID, bob, approvals.Approve, "only this one")
		require.NoError(t, err)
		assert.Nil(t, r2.Grant.Scope, "an approver who approved the operation alone keeps the grant exact")
	})

	t.Run("the trail records the scope and every use", func(t *testing.T) {
		r := create(t, 1)
		_, err := b.DecideScoped(ctx, r.ID, alice, approvals.Approve, "ticket 7", &approvals.ScopeChoice{})
		require.NoError(t, err)
		var grant *approvals.Request
		for _, g := range scoped(t) {
			if g.ID == r.ID {
				grant = g
			}
		}
		require.NotNil(t, grant)
		require.NoError(t, b.UseScope(ctx, grant, agent.User, session, secretOp("update", "shop"), "uid-trail-1"))
		require.NoError(t, b.UseScope(ctx, grant, agent.User, session, secretOp("delete", "shop"), "uid-trail-2"))
		events := approvalEvents(t, js, r.ID, 4)
		assert.Equal(t, trail.ApprovalApproved, events[1].Event)
		assert.Contains(t, events[1].Scope, "secrets in namespace shop")
		assert.Equal(t, trail.ApprovalGrantUsed, events[2].Event)
		assert.Equal(t, "update", events[2].Operation.Verb)
		assert.Equal(t, "uid-trail-1", events[2].AdmissionUID)
		assert.Equal(t, "delete", events[3].Operation.Verb)
	})
}

// approvalEvents reads the first n trail records of approval id.
func approvalEvents(t *testing.T, js jetstream.JetStream, id string, n int) []*trail.Approval {
	t.Helper()
	ctx := t.Context()
	cons, err := js.OrderedConsumer(ctx, trail.StreamTrail, jetstream.OrderedConsumerConfig{FilterSubjects: []string{trail.SubjectAll(trail.KindApproval)}})
	require.NoError(t, err)
	var out []*trail.Approval
	for deadline := time.Now().Add(10 * time.Second); len(out) < n && time.Now().Before(deadline); {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			rec, err := trail.Decode(m.Data())
			require.NoError(t, err)
			if a := rec.(*trail.Approval); a.ApprovalID == id {
				out = append(out, a)
			}
		}
	}
	require.Len(t, out, n)
	return out
}
