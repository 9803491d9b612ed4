package masking

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"
)

// These tests prove that what Gatehouse returns still decodes with client-go, so that kubectl
// get -o yaml/json, describe, get (Tables), create token and apply keep working.

// requireMaskedData checks that every data value decoded to a placeholder.
func requireMaskedData(t *testing.T, s *corev1.Secret) {
	t.Helper()
	require.NotEmpty(t, s.Data)
	for k, v := range s.Data {
		assert.Regexp(t, placeholderRE, string(v), "data[%s]", k)
	}
}

func decode(t *testing.T, b []byte) runtime.Object {
	t.Helper()
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(b, nil, nil)
	require.NoError(t, err)
	return obj
}

func TestClientGoDecodesMaskedObjects(t *testing.T) {
	m := newMasker(t, Config{})
	mask := func(file string, target Target) []byte {
		out, _, err := m.JSON(nil, fixture(t, file), target)
		require.NoError(t, err)
		return out
	}

	sec, ok := decode(t, mask("secret.json", Target{Resource: "secrets"})).(*corev1.Secret)
	require.True(t, ok)
	requireMaskedData(t, sec)
	assert.Equal(t, "db-credentials", sec.Name)
	assert.Equal(t, corev1.SecretTypeOpaque, sec.Type)

	list, ok := decode(t, mask("secretlist.json", Target{Resource: "secrets"})).(*corev1.SecretList)
	require.True(t, ok)
	require.Len(t, list.Items, 4)
	for i := range list.Items {
		requireMaskedData(t, &list.Items[i])
	}

	tr, ok := decode(t, mask("tokenrequest.json", Target{Resource: "serviceaccounts", Subresource: "token"})).(*authnv1.TokenRequest)
	require.True(t, ok)
	assert.Regexp(t, placeholderRE, tr.Status.Token)

	// Tables are decoded by kubectl's printer from meta.k8s.io/v1 JSON.
	var table metav1.Table
	require.NoError(t, json.Unmarshal(mask("table.json", Target{Resource: "secrets"}), &table))
	require.Len(t, table.Rows, 2)
	assert.Equal(t, []any{"db-credentials", "Opaque", float64(2)}, table.Rows[0].Cells[:3])
	for _, row := range table.Rows {
		s, ok := decode(t, row.Object.Raw).(*corev1.Secret)
		require.True(t, ok)
		requireMaskedData(t, s)
	}

	// Watch events, as client-go's watch decoder reads them.
	out, _, err := m.Body("application/json;stream=watch", "", fixture(t, "watch.jsonl"), Target{Resource: "secrets"})
	require.NoError(t, err)
	dec := json.NewDecoder(bytesReader(out))
	n := 0
	for dec.More() {
		var ev metav1.WatchEvent
		require.NoError(t, dec.Decode(&ev))
		obj := decode(t, ev.Object.Raw)
		if s, ok := obj.(*corev1.Secret); ok && ev.Type != "BOOKMARK" {
			requireMaskedData(t, s)
		}
		n++
	}
	assert.Positive(t, n)
}

func TestClientGoApplyWithMaskedLastApplied(t *testing.T) {
	// kubectl apply computes a three-way patch from the last-applied annotation, the file and
	// the live object. With both masked it must still compute one, and the patch must carry
	// the file's values.
	m := newMasker(t, Config{})
	out, _, err := m.JSON(nil, fixture(t, "secret.json"), Target{Resource: "secrets"})
	require.NoError(t, err)
	var live corev1.Secret
	require.NoError(t, json.Unmarshal(out, &live))
	original := []byte(live.Annotations[lastAppliedKey])
	var orig corev1.Secret
	require.NoError(t, json.Unmarshal(original, &orig), "the masked annotation is still a Secret")
	requireMaskedData(t, &orig)

	modified := []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db-credentials","namespace":"payments"},"data":{"password":"bmV3LXBhc3N3b3Jk"},"type":"Opaque"}`)
	current, err := json.Marshal(&live)
	require.NoError(t, err)
	meta, err := strategicpatch.NewPatchMetaFromStruct(&corev1.Secret{})
	require.NoError(t, err)
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, meta, true)
	require.NoError(t, err)
	assert.Contains(t, string(patch), `"password":"bmV3LXBhc3N3b3Jk"`)
	assert.Contains(t, string(patch), `"username":null`, "a key removed from the file is removed")
}
