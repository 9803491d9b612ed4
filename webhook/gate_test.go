package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/approvals"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/natsbus"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

const gatePolicies = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: gate}
spec:
  rules:
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    message: Secrets are reviewed.
    approval: {approverGroups: [sre]}
  - name: approve-pod-status
    match: {resources: [pods/status]}
    action: requireApproval
    message: Pod status changes are reviewed.
    approval: {approverGroups: [sre]}
`

// gateBed decides admission requests with a Gate on a real broker (NATS), as the validator
// would call it.
type gateBed struct {
	gate   *webhook.Gate
	broker *approvals.Broker
	engine *policy.Engine
}

func newGateBed(t *testing.T) *gateBed {
	t.Helper()
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(gatePolicies), &p))
	e := policy.NewEngine(policy.EngineOptions{})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{p}))
	broker, err := approvals.New(bed.js, approvals.Options{Key: approvalKey, Recorder: bed.publisher, Source: "gate-test"})
	require.NoError(t, err)
	m, err := masking.New(masking.Config{Key: []byte("gatehouse-test-masking-key-0001")})
	require.NoError(t, err)
	fp, err := approvals.NewFingerprinter([]byte("gatehouse-test-masking-key-0001"))
	require.NoError(t, err)
	return &gateBed{gate: &webhook.Gate{Broker: broker, Masker: m, Fingerprints: fp, Wait: time.Millisecond}, broker: broker, engine: e}
}

// admit decides req as the validator would: the engine's decision, then the gate.
func (b *gateBed) admit(t *testing.T, req admission.Request) admission.Response {
	t.Helper()
	a := webhook.Attributes(req)
	d, err := b.engine.Evaluate(t.Context(), a)
	require.NoError(t, err)
	require.Equal(t, policy.ActionRequireApproval, d.Action)
	return b.gate.Admit(t.Context(), req, a, d)
}

var sre = trail.Identity{User: "sre-1", Groups: []string{"sre"}}

// gatewayReview is a review of a call through the gateway by user in session s, with extras.
func gatewayReview(uid string, op admissionv1.Operation, resource, sub, name, object, user string, extra map[string]string) admission.Request {
	ex := map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {"s-gate"}}
	for k, v := range extra {
		ex[k] = authenticationv1.ExtraValue{v}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: types.UID(uid), Operation: op, Namespace: "shop", Name: name, SubResource: sub,
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: resource}, Object: runtime.RawExtension{Raw: []byte(object)},
		UserInfo: authenticationv1.UserInfo{Username: user, Groups: []string{"agents"}, Extra: ex},
	}}
}

// heldID returns the approval request a denial names in its Status details.
func heldID(t *testing.T, resp admission.Response) string {
	t.Helper()
	require.False(t, resp.Allowed)
	require.NotNil(t, resp.Result)
	assert.Equal(t, int32(http.StatusForbidden), resp.Result.Code)
	id, ok := approvals.IDFromStatus(resp.Result)
	require.True(t, ok, "the denial names the approval request in its details: %+v", resp.Result)
	assert.Equal(t, id, resp.AuditAnnotations["approval-id"], "and in the audit event")
	return id
}

func TestGateHoldsAndAdmitsOnce(t *testing.T) {
	b := newGateBed(t)
	ctx := t.Context()
	secret := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}}`
	first := gatewayReview("u-1", admissionv1.Create, "secrets", "", "db", secret, "agent", map[string]string{
		identity.ExtraReason: "rotate: password=hunter2-canary", identity.ExtraOriginalUser: "dave"})
	id := heldID(t, b.admit(t, first))

	r, err := b.broker.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "agent", r.Requester.User)
	assert.Equal(t, "dave", r.OriginalUser, "the verified user behind the impersonation is stored")
	assert.NotContains(t, r.Reason, "hunter2-canary", "the reason is masked")
	assert.Contains(t, r.Reason, "rotate: password=")
	assert.NotContains(t, string(r.Object), "aHVudGVyMg", "the object is masked")
	assert.Equal(t, approvals.PathAdmission, r.Path)

	// The same call again finds the same request.
	assert.Equal(t, id, heldID(t, b.admit(t, gatewayReview("u-2", admissionv1.Create, "secrets", "", "db", secret, "agent", nil))))

	// dave, who sent it as agent, cannot approve it.
	_, err = bed.console.Decide(ctx, id, trail.Identity{User: "dave", Groups: []string{"sre"}}, approvals.Approve, "")
	require.ErrorIs(t, err, approvals.ErrNotAllowed)
	_, err = bed.console.Decide(ctx, id, sre, approvals.Approve, "")
	require.NoError(t, err)

	withGrant := map[string]string{identity.ExtraApprovalID: id}
	other := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"b3RoZXI="}}`
	resp := b.admit(t, gatewayReview("u-3", admissionv1.Create, "secrets", "", "db", other, "agent", withGrant))
	assert.False(t, resp.Allowed, "another object cannot use the grant")
	assert.Contains(t, resp.Result.Message, "differs from what approval")
	resp = b.admit(t, gatewayReview("u-4", admissionv1.Create, "secrets", "", "db", secret, "agent-2", withGrant))
	assert.False(t, resp.Allowed, "another requester cannot use the grant")

	resp = b.admit(t, gatewayReview("u-5", admissionv1.Create, "secrets", "", "db", secret, "agent", withGrant))
	assert.True(t, resp.Allowed, "the re-sent call is admitted: %+v", resp.Result)
	assert.Equal(t, id, resp.AuditAnnotations["approval-id"])
	resp = b.admit(t, gatewayReview("u-6", admissionv1.Create, "secrets", "", "db", secret, "agent", withGrant))
	assert.False(t, resp.Allowed, "once")
	assert.Contains(t, resp.Result.Message, "already used")
	assert.Contains(t, resp.Result.Message, `rule "approve-secrets"`, "a refusal names the rule")
}

// TestApprovedStatusUpdateAdmitsOnlyItself: the status of a status update is bound, so one
// approved pods/status update does not admit another.
func TestApprovedStatusUpdateAdmitsOnlyItself(t *testing.T) {
	b := newGateBed(t)
	ctx := t.Context()
	status := func(phase string) string {
		return `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","annotations":{"gatehouse.dev/session-id":"s-gate"}},"spec":{"containers":[{"name":"c"}]},"status":{"phase":"` + phase + `"}}`
	}
	id := heldID(t, b.admit(t, gatewayReview("s-1", admissionv1.Update, "pods", "status", "web", status("Running"), "agent", nil)))
	_, err := bed.console.Decide(ctx, id, sre, approvals.Approve, "")
	require.NoError(t, err)

	// Another status: a request of its own, not the approved one.
	other := heldID(t, b.admit(t, gatewayReview("s-2", admissionv1.Update, "pods", "status", "web", status("Failed"), "agent", nil)))
	assert.NotEqual(t, id, other)
	resp := b.admit(t, gatewayReview("s-3", admissionv1.Update, "pods", "status", "web", status("Failed"), "agent", map[string]string{identity.ExtraApprovalID: id}))
	assert.False(t, resp.Allowed, "the approval of one status does not admit another")

	// The approved status, retried: admitted once.
	resp = b.admit(t, gatewayReview("s-4", admissionv1.Update, "pods", "status", "web", status("Running"), "agent", nil))
	assert.True(t, resp.Allowed, "%+v", resp.Result)
}

// TestGateRefusesForgedGrants: an approval written straight to NATS admits nothing. Every
// identity but the console's (the proxy's, the webhook's own, the enricher's, the administrator's)
// is refused the write by the server; the console's credentials, or anyone else who can write the
// bucket, without the approval key write a decision that fails its MAC: neither the proxy's retry
// naming it nor a direct retry finding it by fingerprint is admitted.
func TestGateRefusesForgedGrants(t *testing.T) {
	b := newGateBed(t)
	ctx := t.Context()
	secret := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"forged"},"data":{"password":"Zm9yZ2Vk"}}`
	id := heldID(t, b.admit(t, gatewayReview("f-1", admissionv1.Create, "secrets", "", "forged", secret, "agent", nil)))

	forged, _ := json.Marshal(map[string]any{"id": id, "state": "Approved", "seq": 1, "grantExpires": time.Now().Add(time.Hour),
		"decisions": []approvals.Decision{{Approver: "sre-1", Verdict: approvals.Approve, Time: time.Now()}}})
	value, _ := json.Marshal(map[string]any{"mac": base64.StdEncoding.EncodeToString(make([]byte, 32)), "data": json.RawMessage(forged)})
	decision := "$KV." + approvals.Bucket + "." + approvals.PrefixDecision + "." + id

	// Every other identity is refused the write by the server: nothing is stored, and the
	// proxy's retry naming the request is still held.
	for _, role := range []natsbus.Role{natsbus.RoleProxy, natsbus.RoleWebhook, natsbus.RoleEnricher, natsbus.RoleAdmin} {
		violations := make(chan string, 8)
		nc, err := bed.nats.ConnectAs(role, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				violations <- err.Error()
			}
		}))
		require.NoError(t, err, role)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		published := make(chan error, 1)
		go func() { _, err := js.Publish(pctx, decision, value); published <- err }()
		select {
		case v := <-violations:
			assert.Contains(t, v, decision, "%s: the server names the refused subject", role)
		case <-pctx.Done():
			t.Errorf("%s: no permission violation for %s", role, decision)
		}
		cancel()
		assert.Error(t, <-published, "%s: the forged decision is not stored", role)
		nc.Close()
	}
	kvInspect, err := bed.inspect.KeyValue(ctx, approvals.Bucket)
	require.NoError(t, err)
	_, err = kvInspect.Get(ctx, approvals.PrefixDecision+"."+id)
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "no identity but the console's wrote a decision")
	resp := b.admit(t, gatewayReview("f-1b", admissionv1.Create, "secrets", "", "forged", secret, "agent", map[string]string{identity.ExtraApprovalID: id}))
	assert.False(t, resp.Allowed, "the proxy's retry is refused while the request is pending")

	// The console's credentials may write decisions; without the key its forgery fails.
	consoleConn, err := bed.nats.ConnectAs(natsbus.RoleConsole)
	require.NoError(t, err)
	defer consoleConn.Close()
	js, err := jetstream.New(consoleConn)
	require.NoError(t, err)
	kv, err := js.KeyValue(ctx, approvals.Bucket)
	require.NoError(t, err)
	_, err = kv.Put(ctx, approvals.PrefixDecision+"."+id, value)
	require.NoError(t, err)

	resp = b.admit(t, gatewayReview("f-2", admissionv1.Create, "secrets", "", "forged", secret, "agent", map[string]string{identity.ExtraApprovalID: id}))
	assert.False(t, resp.Allowed, "the proxy's retry under a forged grant is refused")
	assert.Contains(t, resp.Result.Message, "integrity check")
	again := heldID(t, b.admit(t, gatewayReview("f-3", admissionv1.Create, "secrets", "", "forged", secret, "agent", nil)))
	assert.NotEqual(t, id, again, "a direct retry is not admitted: a new request is made")

	// Approvers still decide the new request the ordinary way.
	_, err = bed.console.Decide(ctx, again, sre, approvals.Approve, "")
	require.NoError(t, err)
	resp = b.admit(t, gatewayReview("f-4", admissionv1.Create, "secrets", "", "forged", secret, "agent", nil))
	assert.True(t, resp.Allowed, "%+v", resp.Result)
}
