package policy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/trail"
)

// TestUnknownObject: the proxy cannot read the object of a patch, an apply or a CBOR body, nor
// the stored object. A rule that judges them is not decided there (not decided as if they were
// null), and the evaluation stops at it: admission decides.
func TestUnknownObject(t *testing.T) {
	const rules = `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: allow-reviewed
    match: {resources: [configmaps], names: ["reviewed-*"]}
    action: allow
  - name: no-admin-bindings
    match: {resources: [rolebindings], apiGroups: [rbac.authorization.k8s.io]}
    condition: "object != null && object.roleRef.name == 'admin'"
    action: deny
  - name: no-shrinking
    match: {resources: [deployments], apiGroups: [apps]}
    condition: "oldObject != null && object.spec.replicas < oldObject.spec.replicas"
    action: requireApproval
    approval: {approverGroups: [sre]}
  - name: everything-else-in-prod
    match: {namespaces: [prod]}
    action: deny
`
	e := newEngine(t, nil, rules)
	binding := policy.Attributes{Verb: "patch", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: "dev", Name: "b"}
	tests := []struct {
		name        string
		a           policy.Attributes
		wantUnknown string // the rule that could not be decided
		wantAction  policy.Action
	}{
		{"a patch's object is unknown", func() policy.Attributes { a := binding; a.ObjectUnknown = true; return a }(), "no-admin-bindings", ""},
		{"a known object is judged", func() policy.Attributes {
			a := binding
			a.Verb, a.Object = "update", []byte(`{"roleRef":{"name":"admin"}}`)
			return a
		}(), "", policy.ActionDeny},
		{"an unknown stored object", policy.Attributes{Verb: "update", Group: "apps", Resource: "deployments", Namespace: "dev", Name: "d",
			Object: []byte(`{"spec":{"replicas":1}}`), OldObjectUnknown: true}, "no-shrinking", ""},
		{"a rule that does not judge the object still decides", policy.Attributes{Verb: "patch", Resource: "secrets", Namespace: "prod", Name: "s", ObjectUnknown: true}, "", policy.ActionDeny},
		{"a create whose name is in the unknown body", policy.Attributes{Verb: "create", Resource: "configmaps", Namespace: "prod", ObjectUnknown: true}, "allow-reviewed", ""},
		{"a create with a known name", policy.Attributes{Verb: "create", Resource: "configmaps", Namespace: "prod", Name: "reviewed-1", ObjectUnknown: true}, "", policy.ActionAllow},
		{"nothing unknown matches", policy.Attributes{Verb: "patch", Resource: "configmaps", Namespace: "dev", Name: "c", ObjectUnknown: true}, "", policy.ActionAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Evaluate(t.Context(), tt.a)
			require.NoError(t, err)
			if tt.wantUnknown != "" {
				assert.True(t, d.Unknown, d.Message)
				assert.Equal(t, tt.wantUnknown, d.Rule)
				assert.Empty(t, d.Action, "an unknown rule decides nothing")
				return
			}
			assert.False(t, d.Unknown, d.Message)
			assert.Equal(t, tt.wantAction, d.Action, d.Message)
		})
	}
}

func TestAdmissionSees(t *testing.T) {
	for _, tt := range []struct {
		a    policy.Attributes
		want bool
	}{
		{policy.Attributes{Verb: "create", Resource: "secrets", Namespace: "shop"}, true},
		{policy.Attributes{Verb: "patch", Group: "apps", Resource: "deployments", Subresource: "scale", Namespace: "shop"}, true},
		{policy.Attributes{Verb: "update", Resource: "pods", Subresource: "ephemeralcontainers", Namespace: "shop"}, true},
		{policy.Attributes{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "kube-system"}, true},
		{policy.Attributes{Verb: "delete", Resource: "namespaces", Name: "shop"}, true},
		{policy.Attributes{Verb: "get", Resource: "secrets", Namespace: "shop"}, false},
		{policy.Attributes{Verb: "list", Resource: "secrets"}, false},
		{policy.Attributes{Verb: "create", Resource: "secrets", Namespace: "kube-system"}, false},
		{policy.Attributes{Verb: "delete", Resource: "namespaces", Name: "gatehouse"}, true},
		{policy.Attributes{Verb: "update", Resource: "namespaces", Name: "gatehouse"}, false},
		{policy.Attributes{Verb: "create", Group: "gatehouse.dev", Resource: "accesspolicies", Namespace: "kube-system"}, true},
		{policy.Attributes{Verb: "patch", Resource: "pods", Subresource: "status", Namespace: "shop"}, false},
		{policy.Attributes{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}, false},
		{policy.Attributes{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"}, false},
		{policy.Attributes{Verb: "update", Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}, true},
	} {
		assert.Equal(t, tt.want, policy.AdmissionSees(tt.a), "%s", tt.a)
	}
}

// TestAdmissionSeesSkipping: a release in another namespace, or with other excluded namespaces,
// skips those and no others.
func TestAdmissionSeesSkipping(t *testing.T) {
	sees := policy.AdmissionSeesSkipping([]string{"kube-system", "security"})
	for _, tt := range []struct {
		a    policy.Attributes
		want bool
	}{
		{policy.Attributes{Verb: "create", Resource: "secrets", Namespace: "security"}, false},
		{policy.Attributes{Verb: "create", Resource: "secrets", Namespace: "gatehouse"}, true},
		{policy.Attributes{Verb: "create", Resource: "secrets", Namespace: "kube-system"}, false},
		{policy.Attributes{Verb: "update", Resource: "namespaces", Name: "security"}, false},
		{policy.Attributes{Verb: "delete", Resource: "namespaces", Name: "security"}, true},
		{policy.Attributes{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "security"}, true},
		{policy.Attributes{Verb: "create", Group: "gatehouse.dev", Resource: "accesspolicies", Namespace: "security"}, true},
	} {
		assert.Equal(t, tt.want, sees(tt.a), "%s", tt.a)
	}
}

func TestTrailOperation(t *testing.T) {
	for _, tt := range []struct {
		a    policy.Attributes
		want string
	}{
		{policy.Attributes{Verb: "patch", Operation: "UPDATE"}, "patch"},
		{policy.Attributes{Operation: "CREATE"}, "create"},
		{policy.Attributes{Operation: "CONNECT", Resource: "pods", Subresource: "exec"}, trail.VerbConnect},
		{policy.Attributes{Verb: "create", Resource: "pods", Subresource: "exec"}, "create"},
		{policy.Attributes{Verb: "get"}, "get"},
	} {
		assert.Equal(t, tt.want, tt.a.TrailOperation().Verb, "%+v", tt.a)
	}
	op := policy.Attributes{Verb: "delete", Group: "apps", Version: "v1", Resource: "deployments", Namespace: "n", Name: "d"}.TrailOperation()
	assert.Equal(t, trail.Operation{Verb: "delete", APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Namespace: "n", Name: "d"}, op)
}

func TestErrorReason(t *testing.T) {
	for err, want := range map[error]string{
		policy.ErrNotReady:                                   "its policies are not loaded yet",
		fmt.Errorf("rule x: %w", policy.ErrLookup):           "an object a rule needs could not be fetched",
		fmt.Errorf("%w: not JSON", policy.ErrBadRequest):     "the request's object could not be read",
		fmt.Errorf("evaluate: %w", context.DeadlineExceeded): "the evaluation timed out",
		errors.New("boom: nats: connection refused"):         "an internal error occurred",
	} {
		assert.Equal(t, want, policy.ErrorReason(err))
	}
}
