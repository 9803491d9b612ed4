package policy_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/policy"
)

func scopePolicy(scope string) string {
	return `
apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata: {name: p}
spec:
  rules:
  - name: secrets
    match: {resources: [secrets, deployments/scale]}
    action: requireApproval
    approval:
      approverGroups: [sre]
      scope: ` + scope + `
`
}

func TestApprovalScope(t *testing.T) {
	e := newEngine(t, nil, scopePolicy(`{verbs: [create, update, delete], resources: [secrets, deployments.apps/scale], maxDuration: 20m}`))
	d, err := e.Evaluate(t.Context(), policy.Attributes{Operation: "CREATE", Verb: "create", Version: "v1", Resource: "secrets", Namespace: "shop", Name: "db"})
	require.NoError(t, err)
	require.NotNil(t, d.Approval)
	assert.Equal(t, &policy.ApprovalScope{
		Verbs:       []string{"create", "update", "delete"},
		Resources:   []policy.ScopeResource{{Resource: "secrets"}, {Group: "apps", Resource: "deployments", Subresource: "scale"}},
		MaxDuration: 20 * time.Minute,
	}, d.Approval.Scope)
	assert.Equal(t, "deployments.apps/scale", d.Approval.Scope.Resources[1].String())

	for name, scope := range map[string]string{
		"a read verb":          `{verbs: [get], maxDuration: 10m}`,
		"no verbs":             `{verbs: [], maxDuration: 10m}`,
		"a wildcard resource":  `{verbs: [create], resources: ["*"], maxDuration: 10m}`,
		"an empty subresource": `{verbs: [create], resources: ["pods/"], maxDuration: 10m}`,
		"longer than a day":    `{verbs: [create], maxDuration: 25h}`,
		"no duration":          `{verbs: [create]}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := policy.NewEngine(policy.EngineOptions{})
			errs := e.SetPolicies(parsePolicies(t, scopePolicy(scope)))
			require.Contains(t, errs, "p")
			assert.ErrorContains(t, errs["p"], "approval.scope")
		})
	}
}
