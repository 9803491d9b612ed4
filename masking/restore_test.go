package masking

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	secretTarget     = Target{Version: "v1", Resource: "secrets", Namespace: "shop"}
	configMapTarget  = Target{Version: "v1", Resource: "configmaps", Namespace: "shop"}
	deploymentTarget = Target{Group: "apps", Version: "v1", Resource: "deployments", Namespace: "shop"}
)

// maskedJSON masks doc as a client reads it through Gatehouse and decodes it.
func maskedJSON(t *testing.T, m *Masker, doc []byte, target Target) map[string]any {
	t.Helper()
	out, _, err := m.JSON(nil, doc, target)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(out, &v))
	return v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

const storedSecret = `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"shop","resourceVersion":"7","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"password\":\"` +
	"Y2FuYXJ5LWRiLXBhc3N3b3Jk" + `\"},\"kind\":\"Secret\",\"metadata\":{\"name\":\"db\",\"namespace\":\"shop\"}}\n"}},"data":{"password":"Y2FuYXJ5LWRiLXBhc3N3b3Jk","user":"c2hvcA=="},"type":"Opaque"}`

const storedDeployment = `{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"shop","namespace":"shop"},"spec":{"template":{"spec":{"containers":[{"name":"shop","image":"shop:1","env":[{"name":"DB_PASSWORD","value":"canary-env-password"},{"name":"MODE","value":"production"}]}]}}}}`

// TestRestoreReadModifyWrite: an object read through Gatehouse, changed and written back gets
// its stored values back where it carries their placeholders.
func TestRestoreReadModifyWrite(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name   string
		stored string
		target Target
		change func(o map[string]any)
		check  func(t *testing.T, o map[string]any)
	}{
		{"a Secret with a new label", storedSecret, secretTarget,
			func(o map[string]any) {
				o["metadata"].(map[string]any)["labels"] = map[string]any{"edited": "yes"}
				o["data"].(map[string]any)["new"] = b64("plain-new-value")
			},
			func(t *testing.T, o map[string]any) {
				data := o["data"].(map[string]any)
				assert.Equal(t, "Y2FuYXJ5LWRiLXBhc3N3b3Jk", data["password"])
				assert.Equal(t, "c2hvcA==", data["user"])
				assert.Equal(t, b64("plain-new-value"), data["new"], "what the client wrote itself stays")
				ann := o["metadata"].(map[string]any)["annotations"].(map[string]any)[lastAppliedKey].(string)
				assert.Contains(t, ann, "Y2FuYXJ5LWRiLXBhc3N3b3Jk", "the last-applied document gets its value back too")
			}},
		{"a Deployment with a new image", storedDeployment, deploymentTarget,
			func(o map[string]any) {
				c := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
				c["image"] = "shop:2"
			},
			func(t *testing.T, o map[string]any) {
				assert.Contains(t, string(mustJSON(t, o)), `"value":"canary-env-password"`)
				assert.Contains(t, string(mustJSON(t, o)), `"image":"shop:2"`)
			}},
		{"a changed last-applied document (kubectl apply of an edited file)", storedSecret, secretTarget,
			func(o map[string]any) {
				ann := o["metadata"].(map[string]any)["annotations"].(map[string]any)
				var doc map[string]any
				require.NoError(t, json.Unmarshal([]byte(ann[lastAppliedKey].(string)), &doc))
				doc["metadata"].(map[string]any)["labels"] = map[string]any{"edited": "yes"}
				ann[lastAppliedKey] = string(mustJSON(t, doc))
			},
			func(t *testing.T, o map[string]any) {
				ann := o["metadata"].(map[string]any)["annotations"].(map[string]any)[lastAppliedKey].(string)
				assert.Contains(t, ann, "Y2FuYXJ5LWRiLXBhc3N3b3Jk")
				assert.Contains(t, ann, `"edited":"yes"`)
			}},
		{"a last-applied document the stored object did not have takes the object's values", `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"shop"},"data":{"password":"Y2FuYXJ5LWRiLXBhc3N3b3Jk"}}`, secretTarget,
			func(o map[string]any) {
				doc := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db"}, "data": o["data"]}
				o["metadata"].(map[string]any)["annotations"] = map[string]any{lastAppliedKey: string(mustJSON(t, doc))}
			},
			func(t *testing.T, o map[string]any) {
				ann := o["metadata"].(map[string]any)["annotations"].(map[string]any)[lastAppliedKey].(string)
				assert.Contains(t, ann, "Y2FuYXJ5LWRiLXBhc3N3b3Jk")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := maskedJSON(t, m, []byte(tt.stored), tt.target)
			requireNoCanary(t, mustJSON(t, read))
			tt.change(read)
			written := mustJSON(t, read)
			require.True(t, HasPlaceholder(written))
			r, err := m.Restore(written, []byte(tt.stored), tt.target)
			require.NoError(t, err)
			assert.Positive(t, r.Values)
			assert.False(t, HasPlaceholder(r.Object), "no placeholder is written")
			var out map[string]any
			require.NoError(t, json.Unmarshal(r.Object, &out))
			tt.check(t, out)
		})
	}
}

// TestRestoreRefusesMovedPlaceholders: a placeholder anywhere but where its value is stored is
// refused, and so is one whose value would be shown where it is written.
func TestRestoreRefusesMovedPlaceholders(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name   string
		stored string
		target Target
		change func(o map[string]any)
	}{
		{"to another key of the same Secret", storedSecret, secretTarget, func(o map[string]any) {
			d := o["data"].(map[string]any)
			d["copy"] = d["password"]
		}},
		{"to a label", storedSecret, secretTarget, func(o map[string]any) {
			o["metadata"].(map[string]any)["labels"] = map[string]any{"leak": mustDecode(o["data"].(map[string]any)["password"].(string))}
		}},
		{"swapped between keys", storedSecret, secretTarget, func(o map[string]any) {
			d := o["data"].(map[string]any)
			d["password"], d["user"] = d["user"], d["password"]
		}},
		{"to another container's env", storedDeployment, deploymentTarget, func(o map[string]any) {
			env := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"].([]any)
			env[1].(map[string]any)["value"] = env[0].(map[string]any)["value"]
		}},
		{"kept in place while renamed to something not masked", storedDeployment, deploymentTarget, func(o map[string]any) {
			env := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"].([]any)
			env[0].(map[string]any)["name"] = "GREETING"
		}},
		{"into an annotation", storedDeployment, deploymentTarget, func(o map[string]any) {
			env := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"].([]any)
			o["metadata"].(map[string]any)["annotations"] = map[string]any{"note": env[0].(map[string]any)["value"]}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := maskedJSON(t, m, []byte(tt.stored), tt.target)
			tt.change(read)
			_, err := m.Restore(mustJSON(t, read), []byte(tt.stored), tt.target)
			require.ErrorIs(t, err, ErrPlaceholderMoved)
			t.Log(err)
		})
	}

	t.Run("to another object", func(t *testing.T) {
		read := maskedJSON(t, m, []byte(storedSecret), secretTarget)
		other := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"other","namespace":"shop"},"data":{"password":"b3RoZXI="}}`
		_, err := m.Restore(mustJSON(t, read), []byte(other), secretTarget)
		require.ErrorIs(t, err, ErrPlaceholderMoved)
	})
	t.Run("a Secret's placeholder into a ConfigMap", func(t *testing.T) {
		read := maskedJSON(t, m, []byte(storedSecret), secretTarget)
		cm := map[string]any{"kind": "ConfigMap", "apiVersion": "v1", "metadata": map[string]any{"name": "db", "namespace": "shop"},
			"data": map[string]any{"password": read["data"].(map[string]any)["password"]}}
		_, err := m.Restore(mustJSON(t, cm), []byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"db","namespace":"shop"},"data":{"password":"x"}}`), configMapTarget)
		require.ErrorIs(t, err, ErrPlaceholderMoved)
	})
}

func mustDecode(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	return string(b)
}

// TestRestoreHelmRelease: Helm marks its previous release superseded by writing back the record
// it read, which Gatehouse showed masked inside; and it writes a new revision that copies the
// values of an earlier one (upgrade without new values, rollback).
func TestRestoreHelmRelease(t *testing.T) {
	m := newMasker(t, Config{})
	relJSON := helmRelease(t)
	stored := releaseSecret(EncodeHelmRelease(relJSON))

	// What Helm does with the record it read: decode, change the status, encode (in its own
	// field order, which differs from Gatehouse's).
	helmRewrite := func(t *testing.T, record map[string]any, change func(rel map[string]any)) {
		t.Helper()
		data := record["data"].(map[string]any)
		inner, err := base64.StdEncoding.DecodeString(data["release"].(string))
		require.NoError(t, err)
		rel := decodeRelease(t, string(inner))
		change(rel)
		data["release"] = base64.StdEncoding.EncodeToString(EncodeHelmRelease(mustJSON(t, rel)))
	}
	restored := func(t *testing.T, obj []byte) map[string]any {
		t.Helper()
		var o map[string]any
		require.NoError(t, json.Unmarshal(obj, &o))
		inner, err := base64.StdEncoding.DecodeString(o["data"].(map[string]any)["release"].(string))
		require.NoError(t, err)
		return decodeRelease(t, string(inner))
	}

	t.Run("superseded", func(t *testing.T) {
		read := maskedJSON(t, m, stored, secretTarget)
		helmRewrite(t, read, func(rel map[string]any) { rel["info"].(map[string]any)["status"] = "superseded" })
		written := mustJSON(t, read)
		require.True(t, HasPlaceholder(written), "the placeholders inside the release are found")
		r, err := m.Restore(written, stored, secretTarget)
		require.NoError(t, err)
		assert.False(t, HasPlaceholder(r.Object))
		rel := restored(t, r.Object)
		assert.Equal(t, "superseded", rel["info"].(map[string]any)["status"])
		assert.Equal(t, "canary-config-password", rel["config"].(map[string]any)["db"].(map[string]any)["password"])
		assert.Equal(t, helmManifest, rel["manifest"])
	})

	t.Run("a new revision from an earlier one", func(t *testing.T) {
		read := maskedJSON(t, m, stored, secretTarget)
		read["metadata"].(map[string]any)["name"] = "sh.helm.release.v1.shop.v2"
		helmRewrite(t, read, func(rel map[string]any) {
			rel["version"] = 2
			rel["info"].(map[string]any)["status"] = "pending-upgrade"
			// Rendered again from the same (masked) values: the ConfigMap changed, the Secret
			// did not.
			rel["manifest"] = strings.Replace(rel["manifest"].(string), "mode: production", "mode: staging", 1)
		})
		r, err := m.Restore(mustJSON(t, read), stored, secretTarget)
		require.NoError(t, err)
		rel := restored(t, r.Object)
		assert.Equal(t, "pending-upgrade", rel["info"].(map[string]any)["status"])
		manifest := rel["manifest"].(string)
		assert.Contains(t, manifest, "mode: staging")
		assert.Contains(t, manifest, "Y2FuYXJ5LWRiLXBhc3N3b3Jk", "the Secret's value is back in its document")
		assert.Contains(t, manifest, "canary-env-password")
		assert.False(t, HasPlaceholder(r.Object))
	})

	t.Run("an upgrade that reuses the values: the chart's values take the release's", func(t *testing.T) {
		read := maskedJSON(t, m, stored, secretTarget)
		read["metadata"].(map[string]any)["name"] = "sh.helm.release.v1.shop.v2"
		helmRewrite(t, read, func(rel map[string]any) {
			rel["version"] = 2
			chart := rel["chart"].(map[string]any)
			chart["values"] = rel["config"]
			rel["config"] = map[string]any{"mode": "staging"}
		})
		r, err := m.Restore(mustJSON(t, read), stored, secretTarget)
		require.NoError(t, err)
		rel := restored(t, r.Object)
		values := rel["chart"].(map[string]any)["values"].(map[string]any)
		assert.Equal(t, "canary-config-password", values["db"].(map[string]any)["password"])
		assert.Equal(t, "sk-canary0123456789abcdefghijklmnopqrstuvwx", values["apiKey"])
		assert.Equal(t, map[string]any{"mode": "staging"}, rel["config"])
	})

	t.Run("a value moved inside the release", func(t *testing.T) {
		read := maskedJSON(t, m, stored, secretTarget)
		helmRewrite(t, read, func(rel map[string]any) {
			cfg := rel["config"].(map[string]any)
			cfg["host"] = cfg["db"].(map[string]any)["password"]
		})
		_, err := m.Restore(mustJSON(t, read), stored, secretTarget)
		require.ErrorIs(t, err, ErrPlaceholderMoved)
	})

	t.Run("ConfigMap driver", func(t *testing.T) {
		storedCM := releaseConfigMap(EncodeHelmRelease(relJSON))
		read := maskedJSON(t, m, storedCM, configMapTarget)
		data := read["data"].(map[string]any)
		rel := decodeRelease(t, data["release"].(string))
		rel["info"].(map[string]any)["status"] = "superseded"
		data["release"] = string(EncodeHelmRelease(mustJSON(t, rel)))
		r, err := m.Restore(mustJSON(t, read), storedCM, configMapTarget)
		require.NoError(t, err)
		var o map[string]any
		require.NoError(t, json.Unmarshal(r.Object, &o))
		got := decodeRelease(t, o["data"].(map[string]any)["release"].(string))
		assert.Equal(t, "canary-config-password", got["config"].(map[string]any)["db"].(map[string]any)["password"])
		assert.Equal(t, "superseded", got["info"].(map[string]any)["status"])
	})
}

// TestRestoredReplace: a patch's strings are replaced by what Restore made of them.
func TestRestoredReplace(t *testing.T) {
	m := newMasker(t, Config{})
	read := maskedJSON(t, m, []byte(storedSecret), secretTarget)
	ph := read["data"].(map[string]any)["password"].(string)
	r, err := m.Restore(mustJSON(t, read), []byte(storedSecret), secretTarget)
	require.NoError(t, err)

	out, err := r.Replace([]byte(`{"data":{"password":"` + ph + `"},"metadata":{"labels":{"a":"b"}}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `{"data":{"password":"Y2FuYXJ5LWRiLXBhc3N3b3Jk"},"metadata":{"labels":{"a":"b"}}}`, string(out))

	_, err = r.Replace([]byte(`{"data":{"password":"` + b64("gatehouse:masked:000000000000") + `"}}`))
	require.ErrorIs(t, err, ErrPlaceholderMoved, "a placeholder Restore did not see is refused")
}
