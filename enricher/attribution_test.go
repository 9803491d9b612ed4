package enricher

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/manifests"
	"github.com/gatehouse-dev/gatehouse/registration"
)

func TestActorKind(t *testing.T) {
	o := Options{GatewayUsers: []string{"system:serviceaccount:gatehouse:gatehouse-proxy"}}
	o.setDefaults()
	a := newAttribution(&o)
	tests := []struct {
		user   string
		groups []string
		want   string
	}{
		{"system:apiserver", nil, ActorControlPlane},
		{"system:kube-controller-manager", nil, ActorControlPlane},
		{"system:kube-scheduler", nil, ActorControlPlane},
		{"system:node:worker-1", []string{"system:nodes"}, ActorControlPlane},
		{"kubelet-on-a-renamed-node", []string{"system:nodes"}, ActorControlPlane},
		{"system:serviceaccount:kube-system:deployment-controller", nil, ActorControlPlane},
		{"system:serviceaccount:gatehouse:gatehouse-webhook", nil, ActorControlPlane},
		{"system:serviceaccount:gatehouse:gatehouse-proxy", nil, ActorControlPlane},
		{"system:serviceaccount:ci:deployer", nil, ActorServiceAccount},
		{"system:serviceaccount:kube-system-lookalike:x", nil, ActorServiceAccount},
		{"oidc:claude", []string{"agents", "system:authenticated"}, ActorAgent},
		{"alice@example.com", []string{"developers"}, ActorHuman},
		{"kubernetes-admin", []string{"system:masters"}, ActorHuman},
		{"system:anonymous", []string{"system:unauthenticated"}, ActorAnonymous},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, a.actorKind(tt.user, tt.groups), tt.user)
	}
	o = Options{AgentGroups: []string{"bots"}, ControlPlaneNamespaces: []string{"kube-system", "platform"}}
	o.setDefaults()
	a = newAttribution(&o)
	assert.Equal(t, ActorHuman, a.actorKind("oidc:claude", []string{"agents"}), "only the configured groups are agents")
	assert.Equal(t, ActorAgent, a.actorKind("oidc:claude", []string{"bots"}))
	assert.Equal(t, ActorControlPlane, a.actorKind("system:serviceaccount:platform:operator", nil))
}

func TestAdmissionAnnotations(t *testing.T) {
	o := Options{}
	o.setDefaults()
	a := newAttribution(&o)
	tests := []struct {
		name string
		ann  map[string]string
		want admission
	}{
		{"Gatehouse's webhook", map[string]string{
			"privileged.validate.gatehouse.dev/decision-id": "admission-u1-validating",
			"privileged.validate.gatehouse.dev/policy":      "gatehouse-approvals",
			"privileged.validate.gatehouse.dev/rule":        "secret-changes",
			"privileged.validate.gatehouse.dev/action":      "requireApproval",
			"privileged.validate.gatehouse.dev/approval-id": "ap-1",
			"authorization.k8s.io/decision":                 "allow",
		}, admission{decisionID: "admission-u1-validating", policy: "gatehouse-approvals", rule: "secret-changes", action: "requireApproval", approvalID: "ap-1"}},
		{"another webhook cannot name a decision or an approval", map[string]string{
			"evil.example.com/decision-id":             "admission-forged-validating",
			"evil.example.com/approval-id":             "ap-forged",
			"privileged.validate.gatehouse.dev.evil/x": "y",
		}, admission{}},
		{"nor a webhook that only ends like Gatehouse's", map[string]string{
			"evil.privileged.validate.gatehouse.dev.example/decision-id": "d",
			"xprivileged.validate.gatehouse.dev/approval-id":             "ap-forged",
		}, admission{}},
		{"the most severe of two", map[string]string{
			"general.validate.gatehouse.dev/decision-id": "d-allow", "general.validate.gatehouse.dev/action": "allow",
			"cluster.validate.gatehouse.dev/decision-id": "d-deny", "cluster.validate.gatehouse.dev/action": "deny",
		}, admission{decisionID: "d-deny", action: "deny"}},
		{"an approval without a decision ID (before decision IDs)", map[string]string{
			"privileged.validate.gatehouse.dev/approval-id": "ap-2",
		}, admission{approvalID: "ap-2"}},
		{"none", nil, admission{}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, a.admissionOf(tt.ann), tt.name)
	}
}

// TestDefaultAdmissionWebhooksAreTheShippedOnes: the enricher reads the audit annotations of
// exactly the validating webhooks the shipped configurations define.
func TestDefaultAdmissionWebhooksAreTheShippedOnes(t *testing.T) {
	data, err := manifests.WebhookConfigurations()
	require.NoError(t, err)
	validating, _, err := registration.Parse(data)
	require.NoError(t, err)
	var names []string
	for _, c := range validating {
		for _, w := range c.Webhooks {
			names = append(names, w.Name)
		}
	}
	assert.ElementsMatch(t, names, DefaultAdmissionWebhooks)
}

func TestIsDryRun(t *testing.T) {
	tests := []struct {
		name string
		ev   auditEvent
		want bool
	}{
		{"create", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets?dryRun=All"}, true},
		{"patch with more parameters", auditEvent{Verb: "patch", RequestURI: "/api/v1/namespaces/a/configmaps/x?fieldManager=kubectl&dryRun=All&force=true"}, true},
		{"delete with DeleteOptions", auditEvent{Verb: "delete", RequestURI: "/api/v1/namespaces/a", RequestObject: json.RawMessage(`{"kind":"DeleteOptions","dryRun":["All"]}`)}, true},
		{"delete", auditEvent{Verb: "delete", RequestURI: "/api/v1/namespaces/a", RequestObject: json.RawMessage(`{"kind":"DeleteOptions"}`)}, false},
		{"a create whose object has a dryRun field", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/configmaps", RequestObject: json.RawMessage(`{"dryRun":["All"]}`)}, false},
		{"a name that says dryRun", auditEvent{Verb: "get", RequestURI: "/api/v1/namespaces/a/configmaps/dryRun=All"}, false},
		{"create", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets"}, false},
		{"an escaped key", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets?dry%52un=All"}, true},
		{"an escaped key, in other parameters", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets?a=b&%64ryRun=&c=d"}, true},
		{"a pair that does not parse", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets?dryRun=%zz"}, false},
		{"another parameter", auditEvent{Verb: "create", RequestURI: "/api/v1/namespaces/a/secrets?fieldManager=kubectl"}, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, isDryRun(&tt.ev), tt.name)
	}
}
