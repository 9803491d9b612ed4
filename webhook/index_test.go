package webhook_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/policy/v1alpha1"
	"github.com/gatehouse-dev/gatehouse/webhook"
)

// indexedPolicies deny through wildcards of each kind the engine's rule index resolves: any
// group, any resource with a subresource, any subresource of a resource (also one another rule
// names), any operation.
const indexedPolicies = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: indexed}
spec:
  rules:
  - name: no-intruder
    match: {users: [intruder]}
    action: deny
  - name: no-scaling
    match: {apiGroups: ["*"], resources: ["*/scale"], operations: [UPDATE]}
    action: deny
  - name: sre-may-exec
    match: {resources: [pods/exec], groups: [sre]}
    action: allow
  - name: no-pod-connect
    match: {resources: ["pods/*"], operations: [CONNECT]}
    action: deny
  - name: no-deployments
    match: {apiGroups: [apps], resources: [deployments], operations: ["*"], namespaces: [frozen]}
    action: deny
`

// TestIndexedRulesCannotBeSidestepped sends reviews through the HTTP endpoint that try to get
// past the rule index: a kind that disagrees with the resource (rules match the resource,
// which kube-apiserver authorized), subresources and operations that only a wildcard names,
// and resources no rule names. Each must be denied by the rule that names it through a
// wildcard; the requests no rule covers are allowed.
func TestIndexedRulesCannotBeSidestepped(t *testing.T) {
	var p v1alpha1.AccessPolicy
	require.NoError(t, yaml.UnmarshalStrict([]byte(indexedPolicies), &p))
	engine := policy.NewEngine(policy.EngineOptions{})
	require.Empty(t, engine.SetPolicies([]v1alpha1.AccessPolicy{p}))
	v, err := webhook.NewValidator(webhook.Options{Engine: engine, Publisher: &recorder{}})
	require.NoError(t, err)
	h := webhook.NewHandler(v, nil)

	post := func(t *testing.T, req admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
		t.Helper()
		body, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request:  &req,
		})
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodPost, webhook.PathValidate, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		var out admissionv1.AdmissionReview
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		require.NotNil(t, out.Response)
		return out.Response
	}
	gvr := func(group, resource string) metav1.GroupVersionResource {
		return metav1.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
	}
	gvk := func(group, kind string) metav1.GroupVersionKind {
		return metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind}
	}
	for _, tt := range []struct {
		name     string
		req      admissionv1.AdmissionRequest
		denyRule string // "" when allowed
	}{
		{"kind of a ConfigMap on a deployment", admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, Kind: gvk("", "ConfigMap"), Resource: gvr("apps", "deployments"),
			RequestKind: ptr.To(gvk("", "ConfigMap")), RequestResource: ptr.To(gvr("", "configmaps")), Namespace: "frozen", Name: "web",
			Object: runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}}`)},
		}, "no-deployments"},
		{"a deployment's scale", admissionv1.AdmissionRequest{
			Operation: admissionv1.Update, Kind: gvk("autoscaling", "Scale"), Resource: gvr("apps", "deployments"), SubResource: "scale",
			Namespace: "shop", Name: "web", Object: runtime.RawExtension{Raw: []byte(`{"spec":{"replicas":9}}`)},
		}, "no-scaling"},
		{"a custom resource's scale", admissionv1.AdmissionRequest{
			Operation: admissionv1.Update, Kind: gvk("autoscaling", "Scale"), Resource: gvr("example.dev", "widgets"), SubResource: "scale",
			Namespace: "shop", Name: "w", Object: runtime.RawExtension{Raw: []byte(`{"spec":{"replicas":9}}`)},
		}, "no-scaling"},
		{"attach, named by no rule", admissionv1.AdmissionRequest{
			Operation: admissionv1.Connect, Kind: gvk("", "PodAttachOptions"), Resource: gvr("", "pods"), SubResource: "attach",
			Namespace: "shop", Name: "web-0",
		}, "no-pod-connect"},
		{"exec, named by a rule for others", admissionv1.AdmissionRequest{
			Operation: admissionv1.Connect, Kind: gvk("", "PodExecOptions"), Resource: gvr("", "pods"), SubResource: "exec",
			Namespace: "shop", Name: "web-0",
		}, "no-pod-connect"},
		{"delete of a deployment in the frozen namespace", admissionv1.AdmissionRequest{
			Operation: admissionv1.Delete, Kind: gvk("apps", "Deployment"), Resource: gvr("apps", "deployments"),
			Namespace: "frozen", Name: "web",
		}, "no-deployments"},
		{"the intruder on a resource no rule names", admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, Kind: gvk("unnamed.dev", "Thing"), Resource: gvr("unnamed.dev", "things"), SubResource: "status",
			Namespace: "shop", Name: "t", UserInfo: authenticationv1.UserInfo{Username: "intruder"},
			Object: runtime.RawExtension{Raw: []byte(`{}`)},
		}, "no-intruder"},
		{"the intruder's exec, where other rules name the operation", admissionv1.AdmissionRequest{
			Operation: admissionv1.Connect, Kind: gvk("", "PodExecOptions"), Resource: gvr("", "pods"), SubResource: "exec",
			Namespace: "shop", Name: "web-0", UserInfo: authenticationv1.UserInfo{Username: "intruder"},
		}, "no-intruder"},
		{"a deployment's status", admissionv1.AdmissionRequest{
			Operation: admissionv1.Update, Kind: gvk("apps", "Deployment"), Resource: gvr("apps", "deployments"), SubResource: "status",
			Namespace: "shop", Name: "web", Object: runtime.RawExtension{Raw: []byte(`{}`)},
		}, ""},
		{"a pod create", admissionv1.AdmissionRequest{
			Operation: admissionv1.Create, Kind: gvk("", "Pod"), Resource: gvr("", "pods"),
			Namespace: "shop", Name: "web-0", Object: runtime.RawExtension{Raw: []byte(`{}`)},
		}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.UID = "uid-indexed"
			if tt.req.UserInfo.Username == "" {
				tt.req.UserInfo = authenticationv1.UserInfo{Username: "agent", Groups: []string{"agents"}}
			}
			resp := post(t, tt.req)
			if tt.denyRule == "" {
				assert.True(t, resp.Allowed, "%+v", resp.Result)
				return
			}
			assert.False(t, resp.Allowed)
			require.NotNil(t, resp.Result)
			assert.Equal(t, int32(http.StatusForbidden), resp.Result.Code)
			assert.Contains(t, resp.Result.Message, `rule "`+tt.denyRule+`"`)
			assert.Equal(t, tt.denyRule, resp.AuditAnnotations[webhook.AuditAnnotationRule])
		})
	}
}
