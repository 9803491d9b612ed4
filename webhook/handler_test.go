package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/trail"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// recorder is a Publisher keeping records in memory; err and notReady simulate NATS trouble.
type recorder struct {
	mu       sync.Mutex
	records  []*trail.Decision
	tried    []*trail.Decision
	err      error
	notReady error
}

func (r *recorder) Publish(_ context.Context, rec trail.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tried = append(r.tried, rec.(*trail.Decision))
	if r.err != nil {
		return r.err
	}
	r.records = append(r.records, rec.(*trail.Decision))
	return nil
}

func (r *recorder) Ready() error { return r.notReady }

func (r *recorder) last(t *testing.T) *trail.Decision {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.records)
	return r.records[len(r.records)-1]
}

// lastTried returns the last record the validator tried to publish, stored or not.
func (r *recorder) lastTried(t *testing.T) *trail.Decision {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.tried)
	return r.tried[len(r.tried)-1]
}

// approverFunc adapts a function to webhook.Approver.
type approverFunc func(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision) admission.Response

func (f approverFunc) Admit(ctx context.Context, req admission.Request, a policy.Attributes, d policy.Decision) admission.Response {
	return f(ctx, req, a, d)
}

const testPolicies = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: unit}
spec:
  rules:
  - name: deny-prod-configmaps
    match: {operations: [CREATE], resources: [configmaps], namespaces: [prod]}
    action: deny
    message: Not in prod.
  - name: approve-secrets
    match: {resources: [secrets]}
    action: requireApproval
    approval: {approverGroups: [sre]}
  - name: judge-exec
    match: {operations: [CONNECT], resources: [pods/exec]}
    condition: pod != null && pod.spec.?hostPID.orValue(false)
    action: deny
`

func unitEngine(t *testing.T, lookup policy.Lookup) *policy.Engine {
	t.Helper()
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(testPolicies), &p))
	e := policy.NewEngine(policy.EngineOptions{Lookup: lookup})
	require.Empty(t, e.SetPolicies([]v1alpha1.AccessPolicy{p}))
	return e
}

func review(op admissionv1.Operation, resource, sub, ns, name string, obj []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:         types.UID("uid-" + strings.ToLower(string(op)) + "-" + resource),
		Operation:   op,
		Resource:    metav1.GroupVersionResource{Version: "v1", Resource: resource},
		SubResource: sub,
		Namespace:   ns,
		Name:        name,
		Object:      runtime.RawExtension{Raw: obj},
		UserInfo: authenticationv1.UserInfo{Username: "agent", UID: "u1", Groups: []string{"agents"}, Extra: map[string]authenticationv1.ExtraValue{
			identity.ExtraSessionID: {"s-1"}, identity.ExtraIssuer: {"https://idp"}, identity.ExtraSubject: {"sub-1"}, identity.ExtraApprovalID: {"ap-1"},
		}},
	}}
}

// failingLookup cannot reach the API server.
type failingLookup struct{}

func (failingLookup) Pod(context.Context, string, string) (*corev1.Pod, error) {
	return nil, errors.New("unreachable")
}

func (failingLookup) Namespace(context.Context, string) (*corev1.Namespace, error) {
	return nil, errors.New("unreachable")
}

func (failingLookup) Role(context.Context, string, string) (*rbacv1.Role, error) {
	return nil, errors.New("unreachable")
}

func (failingLookup) ClusterRole(context.Context, string) (*rbacv1.ClusterRole, error) {
	return nil, errors.New("unreachable")
}

func TestValidatorDecisions(t *testing.T) {
	secret := review(admissionv1.Create, "secrets", "", "prod", "db", []byte(`{"metadata":{"name":"db"}}`))
	prodCM := review(admissionv1.Create, "configmaps", "", "prod", "c", []byte(`{"metadata":{"name":"c"}}`))
	devCM := review(admissionv1.Create, "configmaps", "", "dev", "c", []byte(`{"metadata":{"name":"c"}}`))

	t.Run("allow, deny and requireApproval without an approver", func(t *testing.T) {
		rec := &recorder{}
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec})
		require.NoError(t, err)

		resp := v.Handle(t.Context(), devCM)
		assert.True(t, resp.Allowed)
		assert.Equal(t, "allow", rec.last(t).Policy.Action)

		resp = v.Handle(t.Context(), prodCM)
		assert.False(t, resp.Allowed)
		assert.Equal(t, int32(http.StatusForbidden), resp.Result.Code)
		assert.Equal(t, `Gatehouse denied CREATE configmaps "c" in namespace "prod": Not in prod. [AccessPolicy "unit", rule "deny-prod-configmaps"]`, resp.Result.Message)

		resp = v.Handle(t.Context(), secret)
		assert.False(t, resp.Allowed)
		assert.Contains(t, resp.Result.Message, "requires approval")
		assert.Contains(t, resp.Result.Message, "The approval flow is not configured on this cluster")

		d := rec.last(t)
		assert.Equal(t, &trail.Decision{
			Meta:         trail.Meta{ID: "admission-uid-create-secrets-validating", Time: d.Time},
			Component:    "validating-webhook",
			AdmissionUID: "uid-create-secrets",
			SessionID:    "s-1",
			Identity: trail.Identity{User: "agent", UID: "u1", Groups: []string{"agents"}, Issuer: "https://idp", Subject: "sub-1",
				Extra: map[string][]string{identity.ExtraSessionID: {"s-1"}, identity.ExtraIssuer: {"https://idp"}, identity.ExtraSubject: {"sub-1"}, identity.ExtraApprovalID: {"ap-1"}}},
			Operation:  trail.Operation{Verb: "create", APIVersion: "v1", Resource: "secrets", Namespace: "prod", Name: "db"},
			ViaGateway: true,
			Policy:     trail.Policy{Policy: "unit", Rule: "approve-secrets", Action: "requireApproval", Message: d.Policy.Message},
			ApprovalID: "ap-1",
		}, d)
		assert.False(t, d.Time.IsZero())
	})

	t.Run("a dry run of what needs approval is allowed with a warning, and the approver is not asked", func(t *testing.T) {
		rec := &recorder{}
		asked := false
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec,
			Approver: approverFunc(func(context.Context, admission.Request, policy.Attributes, policy.Decision) admission.Response {
				asked = true
				return admission.Denied("held")
			})})
		require.NoError(t, err)
		dry := secret
		dry.DryRun = ptr.To(true)
		resp := v.Handle(t.Context(), dry)
		assert.True(t, resp.Allowed)
		require.Len(t, resp.Warnings, 1)
		assert.Contains(t, resp.Warnings[0], "requires approval")
		assert.Contains(t, resp.Warnings[0], "This was a dry run")
		assert.False(t, asked)
		assert.True(t, rec.last(t).DryRun)

		// Deny rules apply to dry runs.
		dryProd := prodCM
		dryProd.DryRun = ptr.To(true)
		assert.False(t, v.Handle(t.Context(), dryProd).Allowed)
	})

	t.Run("requireApproval asks the approver", func(t *testing.T) {
		var got policy.Decision
		var gotAttrs policy.Attributes
		approver := approverFunc(func(_ context.Context, _ admission.Request, a policy.Attributes, d policy.Decision) admission.Response {
			got, gotAttrs = d, a
			return admission.Allowed("grant ap-1 used")
		})
		rec := &recorder{}
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec, Approver: approver})
		require.NoError(t, err)
		resp := v.Handle(t.Context(), secret)
		assert.True(t, resp.Allowed)
		assert.Equal(t, policy.ActionRequireApproval, got.Action)
		assert.Equal(t, &policy.Approval{ApproverGroups: []string{"sre"}, Approvals: 1, GrantTTL: got.Approval.GrantTTL}, got.Approval)
		assert.Equal(t, "secrets", gotAttrs.Resource)
		assert.Equal(t, "create", gotAttrs.Verb)
		assert.Equal(t, "requireApproval", rec.last(t).Policy.Action)
	})

	t.Run("fails closed for privileged requests only", func(t *testing.T) {
		notReady := policy.NewEngine(policy.EngineOptions{})
		rec := &recorder{}
		v, err := webhook.NewValidator(webhook.Options{Engine: notReady, Publisher: rec})
		require.NoError(t, err)
		resp := v.Handle(t.Context(), secret)
		assert.False(t, resp.Allowed)
		assert.Contains(t, resp.Result.Message, "its policies are not loaded yet")
		assert.Equal(t, "deny", rec.last(t).Policy.Action)

		resp = v.Handle(t.Context(), devCM)
		assert.True(t, resp.Allowed)
		require.Len(t, resp.Warnings, 1)
		assert.Contains(t, resp.Warnings[0], "allowed because the operation is not privileged")
	})

	t.Run("a failed pod lookup fails the exec closed", func(t *testing.T) {
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, failingLookup{}), Publisher: &recorder{}})
		require.NoError(t, err)
		resp := v.Handle(t.Context(), review(admissionv1.Connect, "pods", "exec", "prod", "web", nil))
		assert.False(t, resp.Allowed)
		assert.Contains(t, resp.Result.Message, "an object a rule needs could not be fetched")
		assert.NotContains(t, resp.Result.Message, "unreachable", "internal errors stay in the log")
	})

	t.Run("a panic denies privileged requests and allows others", func(t *testing.T) {
		boom := approverFunc(func(context.Context, admission.Request, policy.Attributes, policy.Decision) admission.Response {
			panic("approver bug")
		})
		rec := &recorder{}
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec, Approver: boom})
		require.NoError(t, err)
		resp := v.Handle(t.Context(), secret)
		assert.False(t, resp.Allowed)
		assert.Contains(t, resp.Result.Message, "an internal error occurred")
		assert.Equal(t, "deny", rec.last(t).Policy.Action)

		v, err = webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec, Approver: boom,
			Privileged: func(policy.Attributes) bool { return false }})
		require.NoError(t, err)
		resp = v.Handle(t.Context(), secret)
		assert.True(t, resp.Allowed)
		assert.NotEmpty(t, resp.Warnings)
	})

	t.Run("an unrecorded privileged operation is refused", func(t *testing.T) {
		rec := &recorder{err: trail.ErrUnavailable}
		approve := approverFunc(func(context.Context, admission.Request, policy.Attributes, policy.Decision) admission.Response {
			return admission.Allowed("")
		})
		v, err := webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec, Approver: approve})
		require.NoError(t, err)
		resp := v.Handle(t.Context(), secret)
		assert.False(t, resp.Allowed)
		assert.Contains(t, resp.Result.Message, "cannot record this operation")

		assert.True(t, v.Handle(t.Context(), devCM).Allowed, "ordinary operations go on")
		assert.False(t, v.Handle(t.Context(), prodCM).Allowed, "a denial stays a denial")
		dry := secret
		dry.DryRun = ptr.To(true)
		assert.True(t, v.Handle(t.Context(), dry).Allowed, "a dry run needs no record")

		// When the trail says up front that it cannot take a record, the approver is not asked.
		asked := false
		rec = &recorder{notReady: trail.ErrUnavailable}
		v, err = webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil), Publisher: rec,
			Approver: approverFunc(func(context.Context, admission.Request, policy.Attributes, policy.Decision) admission.Response {
				asked = true
				return admission.Allowed("")
			})})
		require.NoError(t, err)
		resp = v.Handle(t.Context(), secret)
		assert.False(t, resp.Allowed)
		assert.False(t, asked, "no grant is consumed for an operation that cannot be recorded")
	})

	t.Run("every answer names its decision in the request's audit event", func(t *testing.T) {
		held := approverFunc(func(context.Context, admission.Request, policy.Attributes, policy.Decision) admission.Response {
			r := admission.Denied("held for approval ap-7")
			r.AuditAnnotations = map[string]string{webhook.AuditAnnotationApprovalID: "ap-7"}
			return r
		})
		tests := []struct {
			name    string
			req     admission.Request
			opts    webhook.Options
			allowed bool
			want    map[string]string
		}{
			{"allowed", devCM, webhook.Options{}, true, map[string]string{
				"decision-id": "admission-uid-create-configmaps-validating", "action": "allow"}},
			{"denied by a rule", prodCM, webhook.Options{}, false, map[string]string{
				"decision-id": "admission-uid-create-configmaps-validating", "policy": "unit", "rule": "deny-prod-configmaps", "action": "deny"}},
			{"held for approval", secret, webhook.Options{Approver: held}, false, map[string]string{
				"decision-id": "admission-uid-create-secrets-validating", "policy": "unit", "rule": "approve-secrets", "action": "requireApproval",
				"approval-id": "ap-7"}},
			{"denied because the trail is down, still named", devCM, webhook.Options{Privileged: func(policy.Attributes) bool { return true }}, false, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rec := &recorder{}
				o := tt.opts
				o.Engine, o.Publisher = unitEngine(t, nil), rec
				if tt.want == nil {
					rec.err = trail.ErrUnavailable
				}
				v, err := webhook.NewValidator(o)
				require.NoError(t, err)
				resp := v.Handle(t.Context(), tt.req)
				assert.Equal(t, tt.allowed, resp.Allowed)
				if tt.want == nil {
					assert.Equal(t, rec.lastTried(t).ID, resp.AuditAnnotations["decision-id"], "the event names the decision the trail could not take")
					return
				}
				assert.Equal(t, tt.want, resp.AuditAnnotations)
				assert.Equal(t, rec.last(t).ID, resp.AuditAnnotations["decision-id"], "the annotation names the decision's record")
			})
		}
	})

	t.Run("options", func(t *testing.T) {
		_, err := webhook.NewValidator(webhook.Options{Publisher: &recorder{}})
		require.ErrorIs(t, err, webhook.ErrInvalidOptions)
		_, err = webhook.NewValidator(webhook.Options{Engine: unitEngine(t, nil)})
		require.ErrorIs(t, err, webhook.ErrInvalidOptions)
	})
}

func TestAttributes(t *testing.T) {
	req := review(admissionv1.Update, "deployments", "", "prod", "web", []byte(`{"a":1}`))
	req.Resource.Group = "apps"
	req.OldObject = runtime.RawExtension{Raw: []byte(`{"a":0}`)}
	req.Options = runtime.RawExtension{Raw: []byte(`{"apiVersion":"meta.k8s.io/v1","kind":"PatchOptions"}`)}
	a := webhook.Attributes(req)
	assert.Equal(t, "UPDATE", a.Operation)
	assert.Equal(t, "patch", a.Verb)
	assert.Equal(t, "apps", a.Group)
	assert.True(t, a.ViaGateway)
	assert.JSONEq(t, `{"a":1}`, string(a.Object))
	assert.JSONEq(t, `{"a":0}`, string(a.OldObject))

	req.Options.Raw = []byte(`{"kind":"UpdateOptions"}`)
	assert.Equal(t, "update", webhook.Attributes(req).Verb)

	conn := review(admissionv1.Connect, "pods", "exec", "prod", "web", []byte(`{"kind":"PodExecOptions"}`))
	a = webhook.Attributes(conn)
	assert.Nil(t, a.Object, "CONNECT options are not an object")
	assert.Equal(t, "connect", a.Verb)
	assert.Equal(t, "CONNECT", a.Op())
}

func applyPatch(t *testing.T, obj []byte, resp admission.Response) []byte {
	t.Helper()
	if len(resp.Patches) == 0 {
		return obj
	}
	raw, err := json.Marshal(resp.Patches)
	require.NoError(t, err)
	p, err := jsonpatch.DecodePatch(raw)
	require.NoError(t, err)
	out, err := p.Apply(obj)
	require.NoError(t, err)
	return out
}

func TestMutator(t *testing.T) {
	m := webhook.NewMutator(nil)
	gateway := func(op admissionv1.Operation, obj string, approval string) admission.Request {
		req := review(op, "configmaps", "", "prod", "c", []byte(obj))
		req.UserInfo.Extra = map[string]authenticationv1.ExtraValue{identity.ExtraSessionID: {"s-9"}}
		if approval != "" {
			req.UserInfo.Extra[identity.ExtraApprovalID] = authenticationv1.ExtraValue{approval}
		}
		return req
	}
	direct := func(op admissionv1.Operation, obj, old string) admission.Request {
		req := review(op, "configmaps", "", "prod", "c", []byte(obj))
		req.UserInfo.Extra = nil
		if old != "" {
			req.OldObject = runtime.RawExtension{Raw: []byte(old)}
		}
		return req
	}
	withOld := func(req admission.Request, old string) admission.Request {
		req.OldObject = runtime.RawExtension{Raw: []byte(old)}
		return req
	}
	tests := []struct {
		name string
		req  admission.Request
		want string // the object after the patch
	}{
		{"create without annotations", gateway(admissionv1.Create, `{"metadata":{"name":"c"},"data":{"k":"v"}}`, ""),
			`{"metadata":{"name":"c","annotations":{"gatehouse.dev/session-id":"s-9"}},"data":{"k":"v"}}`},
		{"create with annotations", gateway(admissionv1.Create, `{"metadata":{"name":"c","annotations":{"x":"y"}}}`, ""),
			`{"metadata":{"name":"c","annotations":{"x":"y","gatehouse.dev/session-id":"s-9"}}}`},
		{"approved update", gateway(admissionv1.Update, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"old"}}}`, "ap-3"),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9","gatehouse.dev/approval-id":"ap-3"}}}`},
		{"unapproved update drops a stale approval", gateway(admissionv1.Update, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"old","gatehouse.dev/approval-id":"ap-1","x":"y"}}}`, ""),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9","x":"y"}}}`},
		{"already stamped", gateway(admissionv1.Update, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9"}}}`, ""),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9"}}}`},
		{"a subresource through the gateway is stamped too", func() admission.Request {
			r := gateway(admissionv1.Update, `{"metadata":{"annotations":{"gatehouse.dev/approval-id":"ap-forged"}},"status":{"phase":"Running"}}`, "")
			r.SubResource = "status"
			return withOld(r, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-0"}}}`)
		}(), `{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9"}},"status":{"phase":"Running"}}`},
		{"a forged gatehouse.dev annotation through the gateway is undone", withOld(gateway(admissionv1.Update,
			`{"metadata":{"annotations":{"gatehouse.dev/owner":"forged"}}}`, ""), `{"metadata":{"annotations":{"gatehouse.dev/owner":"real"}}}`),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-9","gatehouse.dev/owner":"real"}}}`},
		{"a direct change keeps the last gateway stamp", direct(admissionv1.Update,
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-1","note":"x"}}}`, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-1"}}}`),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-1","note":"x"}}}`},
		{"a direct create cannot forge stamps", direct(admissionv1.Create,
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"forged","gatehouse.dev/approval-id":"ap-forged","note":"x"}}}`, ""),
			`{"metadata":{"annotations":{"note":"x"}}}`},
		{"a direct update cannot change or add stamps", direct(admissionv1.Update,
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"forged","gatehouse.dev/approval-id":"ap-forged"}}}`, `{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-1"}}}`),
			`{"metadata":{"annotations":{"gatehouse.dev/session-id":"s-1"}}}`},
		{"a direct status update cannot forge stamps", func() admission.Request {
			r := direct(admissionv1.Update, `{"metadata":{"annotations":{"gatehouse.dev/approval-id":"ap-forged"}}}`, `{"metadata":{}}`)
			r.SubResource = "status"
			return r
		}(), `{"metadata":{"annotations":{}}}`},
		{"a direct write without stamps", direct(admissionv1.Create, `{"metadata":{}}`, ""), `{"metadata":{}}`},
		{"delete", gateway(admissionv1.Delete, `{"metadata":{}}`, ""), `{"metadata":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := m.Handle(t.Context(), tt.req)
			require.True(t, resp.Allowed)
			assert.JSONEq(t, tt.want, string(applyPatch(t, tt.req.Object.Raw, resp)))
		})
	}
	resp := m.Handle(t.Context(), gateway(admissionv1.Create, `not json`, ""))
	assert.False(t, resp.Allowed)
	assert.Equal(t, int32(http.StatusBadRequest), resp.Result.Code)
}

// TestHandlerHTTP: the endpoint is controller-runtime's admission.Webhook; a review it cannot
// decode, or a request without what every review has, gets an error response, never a decision.
func TestHandlerHTTP(t *testing.T) {
	h := webhook.NewHandler(webhook.NewMutator(nil), nil)
	post := func(contentType string, body []byte) (*httptest.ResponseRecorder, admissionv1.AdmissionReview) {
		r := httptest.NewRequest(http.MethodPost, webhook.PathMutate, bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var out admissionv1.AdmissionReview
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		return w, out
	}
	req := review(admissionv1.Create, "configmaps", "", "prod", "c", []byte(`{"metadata":{"name":"c"}}`))
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
	require.NoError(t, err)
	w, out := post("application/json", body)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "admission.k8s.io/v1", out.APIVersion)
	assert.Equal(t, "AdmissionReview", out.Kind)
	assert.Equal(t, req.UID, out.Response.UID)
	assert.True(t, out.Response.Allowed)
	assert.Equal(t, ptr.To(admissionv1.PatchTypeJSONPatch), out.Response.PatchType)

	for _, tt := range []struct {
		name, contentType string
		body              []byte
		code              int32
		want              string
	}{
		{"too large", "application/json", append(bytes.Repeat([]byte(" "), 7<<20), body...), http.StatusRequestEntityTooLarge, "request entity is too large"},
		{"wrong content type", "text/plain", body, http.StatusBadRequest, "expected application/json"},
		{"not JSON", "application/json", []byte("{not json"), http.StatusBadRequest, ""},
		{"unknown operation", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","operation":"PATCH","resource":{"resource":"pods"}}}`),
			http.StatusBadRequest, `malformed AdmissionReview: request.operation "PATCH" is not CREATE, UPDATE, DELETE or CONNECT`},
		{"no request", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest, "malformed AdmissionReview: request.uid is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, out := post(tt.contentType, tt.body)
			require.NotNil(t, out.Response)
			assert.False(t, out.Response.Allowed)
			assert.Equal(t, tt.code, out.Response.Result.Code)
			assert.Contains(t, out.Response.Result.Message, tt.want)
		})
	}
}
