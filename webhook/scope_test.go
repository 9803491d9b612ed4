package webhook_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
)

const scopePolicies = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: gate}
spec:
  rules:
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    message: Secrets are reviewed.
    approval:
      approverGroups: [sre]
      scope: {verbs: [create, update, patch, delete], maxDuration: 30m}
  - name: approve-configmaps
    match: {resources: [configmaps]}
    action: requireApproval
    message: ConfigMaps are reviewed.
    approval:
      approverGroups: [sre]
      scope: {verbs: [create, update], maxDuration: 30m}
`

func newScopeBed(t *testing.T, doc string) *gateBed {
	t.Helper()
	b := newGateBed(t)
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &p))
	b.engine = policy.NewEngine(policy.EngineOptions{})
	require.Empty(t, b.engine.SetPolicies([]v1alpha1.AccessPolicy{p}))
	return b
}

// ownNamespace returns a namespace of the test's own and a function that moves a review into
// it: grants are stored in the shared approvals bucket, so a grant an earlier run of the test
// gave must not apply to this one (go test -count=N).
func ownNamespace(t *testing.T) (string, func(admission.Request) admission.Request) {
	ns := "shop-" + strings.ToLower(rand.Text()[:8])
	t.Logf("reviews in namespace %s", ns)
	return ns, func(r admission.Request) admission.Request {
		r.Namespace = ns
		return r
	}
}

// directReview is a review of a direct call (no gateway session) by user.
func directReview(uid string, op admissionv1.Operation, resource, name, object, user string) admission.Request {
	r := gatewayReview(uid, op, resource, "", name, object, user, nil)
	r.UserInfo.Extra = map[string]authenticationv1.ExtraValue{}
	return r
}

// TestScopedGrants: an approver grants a scope instead of the one operation; the session's
// operations within it pass without another approval; nothing outside it does.
func TestScopedGrants(t *testing.T) {
	b := newScopeBed(t, scopePolicies)
	ctx := t.Context()
	namespace, in := ownNamespace(t)
	secret := func(name string) string {
		return `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"` + name + `"},"data":{"a":"Yg=="}}`
	}
	id := heldID(t, b.admit(t, in(gatewayReview("u-1", admissionv1.Create, "secrets", "", "sh.helm.release.v1.shop.v1", secret("sh.helm.release.v1.shop.v1"), "agent", nil))))
	r, err := b.broker.Get(ctx, id)
	require.NoError(t, err)
	require.NotNil(t, r.ScopeOffer, "the rule offers a scope")
	assert.Equal(t, []string{"secrets"}, r.ScopeOffer.Resources, "for the held resource")
	assert.Equal(t, namespace, r.ScopeOffer.Namespace)

	// Another write of the session: held too, until the approval.
	heldID(t, b.admit(t, in(gatewayReview("u-2", admissionv1.Update, "secrets", "", "other", secret("other"), "agent", nil))))

	_, err = bed.console.DecideScoped(ctx, id, sre, approvals.Approve, "helm install", &approvals.ScopeChoice{Duration: metav1.Duration{Duration: 10 * time.Minute}})
	require.NoError(t, err)

	for i, rv := range []admission.Request{
		in(gatewayReview("u-3", admissionv1.Create, "secrets", "", "sh.helm.release.v1.shop.v1", secret("sh.helm.release.v1.shop.v1"), "agent", nil)),
		in(gatewayReview("u-4", admissionv1.Update, "secrets", "", "sh.helm.release.v1.shop.v1", secret("sh.helm.release.v1.shop.v1"), "agent", nil)),
		in(gatewayReview("u-5", admissionv1.Create, "secrets", "", "shop-db", secret("shop-db"), "agent", nil)),
		in(gatewayReview("u-6", admissionv1.Delete, "secrets", "", "shop-db", "", "agent", nil)),
	} {
		resp := b.admit(t, rv)
		assert.True(t, resp.Allowed, "write %d within the scope: %+v", i, resp.Result)
		assert.Equal(t, id, resp.AuditAnnotations["approval-id"], "the admitting approval is in the audit event")
	}

	outside := map[string]admission.Request{
		"another session": in(gatewayReview("x-1", admissionv1.Create, "secrets", "", "y", secret("y"), "agent", nil)),
		"another user":    in(gatewayReview("x-2", admissionv1.Create, "secrets", "", "y", secret("y"), "agent-2", nil)),
		"direct":          in(directReview("x-3", admissionv1.Create, "secrets", "y", secret("y"), "agent")),
		"another rule":    in(gatewayReview("x-4", admissionv1.Create, "configmaps", "", "y", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"}}`, "agent", nil)),
	}
	outside["another session"].UserInfo.Extra["gatehouse.dev/session-id"] = authenticationv1.ExtraValue{"s-other"}
	ns := in(gatewayReview("x-5", admissionv1.Create, "secrets", "", "y", secret("y"), "agent", nil))
	ns.Namespace = "other"
	outside["another namespace"] = ns
	for name, rv := range outside {
		t.Run(name, func(t *testing.T) { heldID(t, b.admit(t, rv)) })
	}

	t.Run("a rule that no longer offers the verb", func(t *testing.T) {
		narrowed := newScopeBed(t, `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: gate}
spec:
  rules:
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    approval:
      approverGroups: [sre]
      scope: {verbs: [create], maxDuration: 30m}
`)
		narrowed.broker = b.broker
		narrowed.gate = b.gate
		heldID(t, narrowed.admit(t, in(gatewayReview("n-1", admissionv1.Update, "secrets", "", "shop-db", secret("shop-db"), "agent", nil))))
		resp := narrowed.admit(t, in(gatewayReview("n-2", admissionv1.Create, "secrets", "", "z", secret("z"), "agent", nil)))
		assert.True(t, resp.Allowed, "what it still offers passes: %+v", resp.Result)
	})
}

// TestScopedGrantDirect: a person acting directly (no gateway) gets a scope bound to their user,
// and their retries pass.
func TestScopedGrantDirect(t *testing.T) {
	b := newScopeBed(t, scopePolicies)
	ctx := t.Context()
	_, in := ownNamespace(t)
	obj := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"rec"},"data":{"release":"SDRzSQ=="}}`
	id := heldID(t, b.admit(t, in(directReview("d-1", admissionv1.Create, "secrets", "rec", obj, "dev"))))
	r, err := b.broker.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "direct:dev", r.ScopeOffer.Session)
	_, err = bed.console.DecideScoped(ctx, id, sre, approvals.Approve, "", &approvals.ScopeChoice{})
	require.NoError(t, err)
	// Helm's retry writes a record with new timestamps: another object, within the scope.
	retry := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"rec"},"data":{"release":"SDRzSUFBQQ=="}}`
	assert.True(t, b.admit(t, in(directReview("d-2", admissionv1.Create, "secrets", "rec", retry, "dev"))).Allowed)
	assert.True(t, b.admit(t, in(directReview("d-3", admissionv1.Update, "secrets", "rec", retry, "dev"))).Allowed)
	heldID(t, b.admit(t, in(directReview("d-4", admissionv1.Create, "secrets", "rec2", retry, "dev-2"))))
}
