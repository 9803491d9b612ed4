package manifests_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/manifests"
	"github.com/gatehouse-dev/gatehouse/registration"
)

// TestWebhookConfigurations: what gatehouse dev installs are the configurations the chart's
// webhook registers, read from the embedded ConfigMap, not the empty objects beside it.
func TestWebhookConfigurations(t *testing.T) {
	data, err := manifests.WebhookConfigurations()
	require.NoError(t, err)
	validating, mutating, err := registration.Parse(data)
	require.NoError(t, err)
	require.Len(t, validating, 1)
	require.Len(t, mutating, 1)
	assert.Len(t, validating[0].Webhooks, 5)
	assert.Len(t, mutating[0].Webhooks, 2)

	_, err = manifests.ConfigurationsFromConfigMap([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {other.yaml: x}\n"))
	assert.Error(t, err, "a file without the ConfigMap")
}

// TestEmbedded: gatehouse dev applies the namespace before the RBAC, which no longer holds it.
func TestEmbedded(t *testing.T) {
	for _, f := range []string{"namespace.yaml", "proxy/rbac.yaml", "webhook/rbac.yaml", "policies/default.yaml", "audit/policy.yaml", "crd/gatehouse.dev_accesspolicies.yaml"} {
		_, err := manifests.FS.ReadFile(f)
		assert.NoError(t, err, f)
	}
}
