package registration_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gatehouse-dev/gatehouse/registration"
)

const validatingYAML = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: v}
webhooks:
- name: a.example.dev
  clientConfig: {service: {name: s, namespace: n, path: /validate}}
  sideEffects: None
  admissionReviewVersions: [v1]
`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr string
	}{
		{"validating", validatingYAML, ""},
		{"comments and empty documents", "# comment\n---\n" + validatingYAML + "---\n", ""},
		{"nothing", "# nothing\n", "no webhook configuration"},
		{"another kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "unexpected apiVersion"},
		{"another kind of the group", "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n", "unexpected kind"},
		{"a misspelt field", validatingYAML + "  timeoutSecond: 5\n", "unknown field"},
		{"an old version", "apiVersion: admissionregistration.k8s.io/v1beta1\nkind: ValidatingWebhookConfiguration\n", "unexpected apiVersion"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _, err := registration.Parse([]byte(tc.data))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, v, 1)
			assert.Equal(t, "v", v[0].Name)
		})
	}
}

func TestOptionsAndFlags(t *testing.T) {
	v, m, err := registration.Parse([]byte(validatingYAML))
	require.NoError(t, err)
	_, err = registration.New(fake.NewClientset(), registration.Options{Validating: v, Mutating: m, URL: "http://localhost:9443"})
	assert.ErrorIs(t, err, registration.ErrInvalidOptions, "kube-apiserver calls webhooks over https only")
	_, err = registration.New(fake.NewClientset(), registration.Options{})
	assert.ErrorIs(t, err, registration.ErrInvalidOptions)

	r, err := registration.New(fake.NewClientset(), registration.Options{Validating: v})
	require.NoError(t, err)
	assert.ErrorIs(t, r.Probe(context.Background()), registration.ErrNoBundle, "nothing to verify the webhook with yet")
	assert.Error(t, r.SetCABundle(context.Background(), []byte("not PEM")))

	tests := []struct {
		name        string
		f           registration.Flags
		selfManaged bool
		ok          bool
	}{
		{"off", registration.Flags{}, false, true},
		{"self-managed", registration.Flags{Configurations: "c.yaml"}, true, true},
		{"cert-manager", registration.Flags{Configurations: "c.yaml", CABundleFile: "ca.crt"}, false, true},
		{"no CA", registration.Flags{Configurations: "c.yaml"}, false, false},
		{"two CAs", registration.Flags{Configurations: "c.yaml", CABundleFile: "ca.crt"}, true, false},
		{"URL without configurations", registration.Flags{URL: "https://localhost:9443"}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, tc.f.Validate(tc.selfManaged) == nil)
		})
	}
}
