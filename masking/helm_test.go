package masking

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// helmManifest is what Helm renders for a chart with a Secret, a ConfigMap and a Deployment.
const helmManifest = `---
# Source: shop/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: shop-db
type: Opaque
data:
  password: Y2FuYXJ5LWRiLXBhc3N3b3Jk
stringData:
  apiToken: canary-string-data-token
---
# Source: shop/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-config
data:
  mode: production
  replicas: "3"
---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
spec:
  template:
    spec:
      containers:
      - name: shop
        image: shop:1.0
        env:
        - name: DB_PASSWORD
          value: canary-env-password
        - name: MODE
          value: production
`

// helmRelease returns the JSON of a Helm release as Helm writes it.
func helmRelease(t testing.TB) []byte {
	t.Helper()
	file := func(name, data string) map[string]any {
		return map[string]any{"name": name, "data": base64.StdEncoding.EncodeToString([]byte(data))}
	}
	rel := map[string]any{
		"name": "shop",
		"info": map[string]any{
			"first_deployed": "2026-12-01T10:00:00Z", "last_deployed": "2026-12-01T10:00:00Z",
			"status": "deployed", "description": "Install complete",
			"notes": "Log in with password=canary-notes-password to the shop.",
		},
		"chart": map[string]any{
			"metadata": map[string]any{"name": "shop", "version": "1.0.0", "apiVersion": "v2"},
			"lock":     nil,
			"templates": []any{
				file("templates/configmap.yaml", "apiVersion: v1\nkind: ConfigMap\ndata:\n  mode: {{ .Values.mode | quote }}\n"),
				file("templates/hardcoded.yaml", "env:\n- name: X\n  value: \"--password=canary-template-password\"\n"),
			},
			"values": map[string]any{
				"replicas": 3,
				"db":       map[string]any{"user": "shop", "password": "canary-chart-default-password"},
			},
			"schema": nil,
			"files":  []any{file("config/app.ini", "[db]\npassword = canary-file-password\nhost = db\n")},
		},
		"config": map[string]any{
			"db":      map[string]any{"password": "canary-config-password", "host": "db.shop"},
			"apiKey":  "sk-canary0123456789abcdefghijklmnopqrstuvwx",
			"replica": 2,
		},
		"manifest": helmManifest,
		"hooks": []any{map[string]any{
			"name": "shop-migrate", "kind": "Job", "path": "shop/templates/job.yaml",
			"manifest": "# Source: shop/templates/job.yaml\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: shop-migrate\nspec:\n  template:\n    spec:\n      containers:\n      - name: migrate\n        args: [\"--password\", \"canary-hook-password\"]\n",
			"events":   []string{"pre-install"}, "last_run": map[string]any{"phase": ""},
		}},
		"version":   1,
		"namespace": "shop",
	}
	b, err := json.Marshal(rel)
	require.NoError(t, err)
	return b
}

func decodeRelease(t testing.TB, payload string) map[string]any {
	t.Helper()
	doc, ok := DecodeHelmRelease([]byte(payload))
	require.True(t, ok, "Helm can decode the payload")
	var rel map[string]any
	require.NoError(t, json.Unmarshal(doc, &rel))
	return rel
}

func releaseSecret(payload []byte) []byte {
	return fmt.Appendf(nil, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"sh.helm.release.v1.shop.v1","namespace":"shop","labels":{"name":"shop","owner":"helm","status":"deployed","version":"1"}},"data":{"release":%q},"type":"helm.sh/release.v1"}`,
		base64.StdEncoding.EncodeToString(payload))
}

func releaseConfigMap(payload []byte) []byte {
	return fmt.Appendf(nil, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"sh.helm.release.v1.shop.v1","namespace":"shop","labels":{"name":"shop","owner":"helm","status":"deployed","version":"1"}},"data":{"release":%q}}`,
		payload)
}

// checkMaskedRelease checks a masked release: the secrets gone, the rest as it was.
func checkMaskedRelease(t *testing.T, rel map[string]any) {
	t.Helper()
	all, err := json.Marshal(rel)
	require.NoError(t, err)
	requireNoCanary(t, all, "sk-canary0123456789abcdefghijklmnopqrstuvwx")

	config := rel["config"].(map[string]any)
	assert.Regexp(t, placeholderRE, config["db"].(map[string]any)["password"], "values are masked by key name")
	assert.Equal(t, "db.shop", config["db"].(map[string]any)["host"], "other values are kept")
	assert.EqualValues(t, 2, config["replica"])
	chart := rel["chart"].(map[string]any)
	assert.Regexp(t, placeholderRE, chart["values"].(map[string]any)["db"].(map[string]any)["password"], "the chart's defaults are masked too")
	assert.Equal(t, "shop", chart["metadata"].(map[string]any)["name"])

	manifest := rel["manifest"].(string)
	assert.Contains(t, manifest, "# Source: shop/templates/secret.yaml", "Helm's comments are kept")
	assert.Contains(t, manifest, "mode: production", "a document with nothing secret is kept")
	assert.Contains(t, manifest, "image: shop:1.0")
	assert.Contains(t, manifest, base64.StdEncoding.EncodeToString([]byte("gatehouse:masked:"))[:20], "a Secret in the manifest is masked as a Secret")
	assert.Equal(t, 3, strings.Count(manifest, "\n---\n")+strings.Count(manifest[:4], "---"), "every document is still there")

	tpl, err := base64.StdEncoding.DecodeString(chart["templates"].([]any)[0].(map[string]any)["data"].(string))
	require.NoError(t, err)
	assert.Contains(t, string(tpl), "{{ .Values.mode | quote }}", "templates without secrets are kept")
	tpl, err = base64.StdEncoding.DecodeString(chart["templates"].([]any)[1].(map[string]any)["data"].(string))
	require.NoError(t, err)
	assert.Contains(t, string(tpl), "--password=gatehouse:masked:", "templates are masked as text")
	file, err := base64.StdEncoding.DecodeString(chart["files"].([]any)[0].(map[string]any)["data"].(string))
	require.NoError(t, err)
	assert.Contains(t, string(file), "host = db", "files are masked as text")
	assert.Contains(t, string(file), "password = gatehouse:masked:")
	assert.Contains(t, rel["info"].(map[string]any)["notes"], "password=gatehouse:masked:")
	assert.Equal(t, "deployed", rel["info"].(map[string]any)["status"])
}

func TestHelmReleaseSecret(t *testing.T) {
	m := newMasker(t, Config{})
	payload := EncodeHelmRelease(helmRelease(t))
	out, stats, err := m.Body("application/json", "", releaseSecret(payload), Target{Version: "v1", Resource: "secrets", Namespace: "shop"})
	require.NoError(t, err)
	requireValidJSON(t, out)
	assert.Greater(t, stats.Fields, 8)

	var s struct {
		Type string            `json:"type"`
		Data map[string]string `json:"data"`
	}
	require.NoError(t, json.Unmarshal(out, &s))
	inner, err := base64.StdEncoding.DecodeString(s.Data["release"])
	require.NoError(t, err)
	checkMaskedRelease(t, decodeRelease(t, string(inner)))

	again, _, err := m.Body("application/json", "", out, Target{Version: "v1", Resource: "secrets", Namespace: "shop"})
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again), "masking a masked release changes nothing")
}

func TestHelmReleaseConfigMap(t *testing.T) {
	m := newMasker(t, Config{})
	payload := EncodeHelmRelease(helmRelease(t))
	out, _, err := m.Body("application/json", "", releaseConfigMap(payload), Target{Version: "v1", Resource: "configmaps", Namespace: "shop"})
	require.NoError(t, err)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, json.Unmarshal(out, &cm))
	checkMaskedRelease(t, decodeRelease(t, cm.Data["release"]))
}

// TestHelmReleaseEverywhere: a release is masked inside wherever its record appears: a list,
// a watch event, a Table row, an audit event, an AdmissionReview.
func TestHelmReleaseEverywhere(t *testing.T) {
	m := newMasker(t, Config{})
	secret := string(releaseSecret(EncodeHelmRelease(helmRelease(t))))
	cm := string(releaseConfigMap(EncodeHelmRelease(helmRelease(t))))
	tests := []struct {
		name string
		doc  string
		t    Target
	}{
		{"secret list, items without kind", `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[` + strings.Replace(secret, `"kind":"Secret","apiVersion":"v1",`, "", 1) + `]}`, Target{Version: "v1", Resource: "secrets"}},
		{"configmap list", `{"kind":"ConfigMapList","apiVersion":"v1","metadata":{},"items":[` + cm + `]}`, Target{Version: "v1", Resource: "configmaps"}},
		{"watch event", `{"type":"ADDED","object":` + secret + `}`, Target{Version: "v1", Resource: "secrets", Watch: true}},
		{"table row", `{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["x"],"object":` + secret + `}]}`, Target{Version: "v1", Resource: "secrets"}},
		{"audit event", `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"secrets","namespace":"shop","apiVersion":"v1"},"requestObject":` + secret + `}`, Target{}},
		{"no hint", secret, Target{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := m.Body("application/json", "", []byte(tt.doc), tt.t)
			require.NoError(t, err)
			requireValidJSON(t, out)
			requireNoCanary(t, out)
			// The payloads are still releases Helm decodes, masked inside.
			n := 0
			for _, p := range findAll(out, `"release":"`) {
				v := p
				if strings.Contains(tt.doc, `"type":"helm.sh/release.v1"`) && !strings.HasPrefix(v, "H4sI") {
					b, err := base64.StdEncoding.DecodeString(v)
					require.NoError(t, err)
					v = string(b)
				}
				checkMaskedRelease(t, decodeRelease(t, v))
				n++
			}
			assert.Positive(t, n)
		})
	}
}

// findAll returns the JSON string values that follow prefix in doc.
func findAll(doc []byte, prefix string) []string {
	var out []string
	for s := string(doc); ; {
		i := strings.Index(s, prefix)
		if i < 0 {
			return out
		}
		s = s[i+len(prefix):]
		out = append(out, s[:strings.IndexByte(s, '"')])
	}
}

// TestHelmReleaseNotARelease: what only looks like a release is masked whole.
func TestHelmReleaseNotARelease(t *testing.T) {
	m := newMasker(t, Config{})
	gz := func(s string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write([]byte(s))
		_ = zw.Close()
		return base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	tests := []struct {
		name, doc string
		target    Target
		masked    bool
	}{
		{"a helm-typed Secret with other data", string(fmt.Appendf(nil, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"data":{"release":%q,"other":"Y2FuYXJ5"},"type":"helm.sh/release.v1"}`,
			base64.StdEncoding.EncodeToString([]byte("canary-not-a-release")))), Target{Resource: "secrets", Version: "v1"}, true},
		{"a release payload in an Opaque Secret", string(fmt.Appendf(nil, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"data":{"release":%q},"type":"Opaque"}`,
			base64.StdEncoding.EncodeToString(EncodeHelmRelease(helmRelease(t))))), Target{Resource: "secrets", Version: "v1"}, true},
		{"gzip with a password in a ConfigMap", `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"},"data":{"blob":"` + gz("db:\n  password: canary-gzip-password\n") + `"}}`, Target{Resource: "configmaps", Version: "v1"}, true},
		{"gzip without secrets in a ConfigMap", `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"},"data":{"blob":"` + gz("replicas: 3\nmode: production\n") + `"}}`, Target{Resource: "configmaps", Version: "v1"}, false},
		{"a release with a broken manifest", string(releaseConfigMap(EncodeHelmRelease([]byte(`{"name":"x","manifest":"key: [\npassword=canary-unparsable\n","info":{}}`)))), Target{Resource: "configmaps", Version: "v1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := m.Body("application/json", "", []byte(tt.doc), tt.target)
			require.NoError(t, err)
			requireValidJSON(t, out)
			requireNoCanary(t, out)
			var o struct {
				Data map[string]string `json:"data"`
			}
			require.NoError(t, json.Unmarshal(out, &o))
			if !tt.masked {
				assert.Equal(t, tt.doc, string(out))
			}
			for _, v := range o.Data {
				if strings.HasPrefix(v, "H4sI") {
					if doc, ok := DecodeHelmRelease([]byte(v)); ok {
						assert.NotContains(t, string(doc), "canary")
					}
				}
			}
		})
	}
}

// TestHelmReleaseSecretTypeAnywhere lists release Secrets among other Secrets, in every order,
// with the type escaped as JSON allows, and with the type's name elsewhere in an ordinary
// Secret: the release Secrets, and only they, keep a payload Helm decodes, masked inside; every
// other Secret's data.release is a placeholder.
func TestHelmReleaseSecretTypeAnywhere(t *testing.T) {
	m := newMasker(t, Config{})
	payload := base64.StdEncoding.EncodeToString(EncodeHelmRelease(helmRelease(t)))
	secret := func(name, typ, annotation string) string {
		return fmt.Sprintf(`{"metadata":{"name":%q,"annotations":{"note":%q}},"data":{"release":%q,"other":"Y2FuYXJ5LXZhbHVl"},"type":"%s"}`,
			name, annotation, payload, typ)
	}
	const helmType = "helm.sh/release.v1"
	tests := []struct {
		name  string
		items []string
		helm  []bool
	}{
		{"release last", []string{secret("a", "Opaque", ""), secret("b", "Opaque", ""), secret("c", helmType, "")}, []bool{false, false, true}},
		{"release first", []string{secret("a", helmType, ""), secret("b", "Opaque", ""), secret("c", "Opaque", "")}, []bool{true, false, false}},
		{"releases between", []string{secret("a", "Opaque", ""), secret("b", helmType, ""), secret("c", "Opaque", ""), secret("d", helmType, ""), secret("e", "Opaque", "")},
			[]bool{false, true, false, true, false}},
		{"escaped slash", []string{secret("a", "Opaque", ""), secret("b", `helm.sh\/release.v1`, "")}, []bool{false, true}},
		{"escaped letter", []string{secret("a", `\u0068elm.sh/release.v1`, ""), secret("b", "Opaque", "")}, []bool{true, false}},
		{"name elsewhere", []string{secret("a", "Opaque", helmType), secret("b", "Opaque", "")}, []bool{false, false}},
		{"name elsewhere before a release", []string{secret("a", "Opaque", helmType), secret("b", helmType, "")}, []bool{false, true}},
		{"escape elsewhere", []string{secret("a", "Opaque", `say \"hi\"`), secret("b", "Opaque", "")}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[` + strings.Join(tt.items, ",") + `]}`
			out, _, err := m.Body("application/json", "", []byte(doc), Target{Version: "v1", Resource: "secrets"})
			require.NoError(t, err)
			requireValidJSON(t, out)
			requireNoCanary(t, out)
			var list struct {
				Items []struct {
					Data map[string]string `json:"data"`
				} `json:"items"`
			}
			require.NoError(t, json.Unmarshal(out, &list))
			require.Len(t, list.Items, len(tt.helm))
			for i, item := range list.Items {
				release, err := base64.StdEncoding.DecodeString(item.Data["release"])
				require.NoError(t, err)
				if tt.helm[i] {
					checkMaskedRelease(t, decodeRelease(t, string(release)))
				} else {
					assert.Regexp(t, placeholderRE, string(release), "item %d: masked whole", i)
				}
				other, err := base64.StdEncoding.DecodeString(item.Data["other"])
				require.NoError(t, err)
				assert.Regexp(t, placeholderRE, string(other), "item %d: other data is masked", i)
			}
		})
	}
}

func TestIndexHelmReleaseType(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{``, -1},
		{`"helm.sh/release.v1"`, 0},
		{`{"type":"helm.sh/release.v1"}`, 8},
		{`"xhelm.sh/release.v1" "helm.sh/release.v1"`, 22},
		{`.sh/release.v1" "helm.sh/release.v1`, -1},
		{`helm.sh/release.v1"`, -1},
		{`"Helm.sh/release.v1"`, -1},
		{`"app.kubernetes.io/name":"helm.sh/release.v1"`, 25},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, indexHelmReleaseType([]byte(tt.in)), tt.in)
	}
}
