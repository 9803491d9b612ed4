package masking

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nest returns s as a JSON string literal, n times over.
func nest(s string, n int) string {
	for range n {
		s = quote(s)
	}
	return s
}

func TestNestedJSON(t *testing.T) {
	gh := ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA")
	tests := []struct {
		name  string
		in    string
		want  string // with <<P:…>> markers
		stats map[string]int
	}{
		{
			name:  "a registry credential in a JSON string in a JSON log line",
			in:    `{"level":"info","msg":"pushed","config":` + quote(`{"auths":{"ghcr.io":{"auth":"Ym90OnB3"}}}`) + `}`,
			want:  `{"level":"info","msg":"pushed","config":` + quote(expand(`{"auths":{"ghcr.io":{"auth":"<<P:Ym90OnB3>>"}}}`)) + `}`,
			stats: map[string]int{"docker-config-auth": 1},
		},
		{
			name:  "every other byte is kept, escapes and all",
			in:    `{"a":"x\/y \u003cb\u003e é \u00e9","cfg":"{\"url\":\"https:\/\/h\/p?q=1\u0026r=2\",\"password\":\"hunter2\",\"note\":\"\u003c\u003e\"}","z":1}`,
			want:  `{"a":"x\/y \u003cb\u003e é \u00e9","cfg":"{\"url\":\"https:\/\/h\/p?q=1\u0026r=2\",\"password\":\"<<P:hunter2>>\",\"note\":\"\u003c\u003e\"}","z":1}`,
			stats: map[string]int{"password-assignment": 1},
		},
		{
			name:  "a query parameter after an escaped ampersand",
			in:    `{"settings":"{\"backup\":\"https://st.blob.core.windows.net/b?sv=2022-11-02\u0026sig=Zk3qP9xW2vL8nR4tQ7mB\"}"}`,
			want:  `{"settings":"{\"backup\":\"https://st.blob.core.windows.net/b?sv=2022-11-02\u0026sig=<<P:Zk3qP9xW2vL8nR4tQ7mB>>\"}"}`,
			stats: map[string]int{"keyword-entropy": 1},
		},
		{
			name:  "a service account key held as a string is masked whole, whatever the member order",
			in:    `{"kind":"ConfigMap","apiVersion":"v1","data":{"sa.json":` + quote(`{"client_email":"a@p.iam.gserviceaccount.com","private_key":"k","private_key_id":"0a1b","project_id":"p","type":"service_account"}`) + `}}`,
			want:  `{"kind":"ConfigMap","apiVersion":"v1","data":{"sa.json":` + quote(expand(`{"client_email":"<<P:a@p.iam.gserviceaccount.com>>","private_key":"<<P:k>>","private_key_id":"<<P:0a1b>>","project_id":"<<P:p>>","type":"<<P:service_account>>"}`)) + `}}`,
			stats: map[string]int{"gcp-service-account-key": 5},
		},
		{
			name:  "a private JSON Web Key",
			in:    `{"jwk":` + quote(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}`) + `}`,
			want:  `{"jwk":` + quote(expand(`{"kty":"<<P:OKP>>","crv":"<<P:Ed25519>>","x":"<<P:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo>>","d":"<<P:nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A>>"}`)) + `}`,
			stats: map[string]int{"jwk-private-key": 4},
		},
		{
			name: "a public JSON Web Key set is kept",
			in:   `{"jwks":` + quote(`{"keys":[{"kty":"RSA","e":"AQAB","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","kid":"k1"}]}`) + `}`,
		},
		{
			name:  "a kubeconfig as JSON: its users are the credential",
			in:    `{"kubeconfig":` + quote(`{"kind":"Config","apiVersion":"v1","clusters":[{"name":"c","cluster":{"server":"https://203.0.113.1:6443"}}],"users":[{"name":"u","user":{"token":"abc","username":"admin"}}]}`) + `}`,
			want:  `{"kubeconfig":` + quote(expand(`{"kind":"Config","apiVersion":"v1","clusters":[{"name":"c","cluster":{"server":"https://203.0.113.1:6443"}}],"users":[{"name":"u","user":{"token":"<<P:abc>>","username":"<<P:admin>>"}}]}`)) + `}`,
			stats: map[string]int{"kubeconfig-credentials": 2},
		},
		{
			name:  "a Secret manifest held as a string is masked as a Secret",
			in:    `{"manifest":` + quote(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"aHVudGVyMg=="}}`) + `}`,
			want:  `{"manifest":` + quote(expand(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"<<B:hunter2>>"}}`)) + `}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name: "JSON that holds no kind keeps its data",
			in:   `{"config":` + quote(`{"data":{"color":"blue","size":"XL"},"items":[{"data":{"x":"y"}}]}`) + `}`,
		},
		{
			name:  "JSON after text in a string",
			in:    `{"message":` + quote(`webhook rejected the request: {"password":"hunter2","user":"bob"}`) + `}`,
			want:  `{"message":` + quote(expand(`webhook rejected the request: {"password":"<<P:hunter2>>","user":"bob"}`)) + `}`,
			stats: map[string]int{"password-assignment": 1},
		},
		{
			name:  "a shape is found at any depth",
			in:    `{"a":` + nest(`{"b":"`+gh+`"}`, 7) + `}`,
			want:  `{"a":` + nest(expand(`{"b":"<<P:`+gh+`>>"}`), 7) + `}`,
			stats: map[string]int{"github-token": 1},
		},
		{
			name:  "a base64 docker config",
			in:    `{"kind":"ConfigMap","apiVersion":"v1","data":{"value07":"` + base64.StdEncoding.EncodeToString([]byte(`{"auths":{"r.example.com":{"auth":"dTpw"}}}`)) + `"}}`,
			want:  `{"kind":"ConfigMap","apiVersion":"v1","data":{"value07":"<<P:` + base64.StdEncoding.EncodeToString([]byte(`{"auths":{"r.example.com":{"auth":"dTpw"}}}`)) + `>>"}}`,
			stats: map[string]int{"base64-credential-document": 1},
		},
		{
			name: "base64 JSON without a credential is kept",
			in:   `{"kind":"ConfigMap","apiVersion":"v1","data":{"value07":"` + base64.StdEncoding.EncodeToString([]byte(`{"feature":"checkout","enabled":true}`)) + `"}}`,
		},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := m.JSON(nil, []byte(tt.in), Target{})
			require.NoError(t, err)
			want := tt.in
			if tt.want != "" {
				want = expand(tt.want)
			}
			assert.Equal(t, want, string(out))
			assert.Equal(t, tt.stats, st.Detectors)
			requireValidJSON(t, out)
			requireNestedValid(t, out)

			again, st2, err := m.JSON(nil, out, Target{})
			require.NoError(t, err)
			assert.Equal(t, string(out), string(again), "masking twice changes nothing")
			assert.Zero(t, st2.Fields)

			// The same document as a log line.
			text, tst := m.Text(nil, []byte(tt.in+"\n"))
			assert.Equal(t, want+"\n", string(text))
			assert.Equal(t, st.Fields, tst.Fields)
		})
	}
}

// requireNestedValid fails if a string of doc that held a JSON document holds invalid JSON.
func requireNestedValid(t *testing.T, doc []byte) {
	t.Helper()
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if s := strings.TrimSpace(v); strings.HasPrefix(s, `{"`) && strings.HasSuffix(s, "}") {
				var inner any
				require.NoError(t, json.Unmarshal([]byte(s), &inner), "nested document %q", s)
				walk(inner)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var v any
	require.NoError(t, json.Unmarshal(doc, &v))
	walk(v)
}

func TestKubeconfigYAML(t *testing.T) {
	m := newMasker(t, Config{})
	users := "- name: deployer\n  user:\n    token: Zk3qP9xW2vL8nR4tQ7mB\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    client-key-data: bm90IGEga2V5"
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\nusers:\n" + users + "\ncurrent-context: prod\n"
	out, st := m.Text(nil, []byte(kc))
	assert.Equal(t, expand("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://203.0.113.10:6443\n  name: prod\nusers:\n<<P:"+users+">>\ncurrent-context: prod\n"), string(out))
	assert.Equal(t, 1, st.Detectors["kubeconfig-credentials"])

	// Without a credential (a token file, an exec plugin) the kubeconfig is kept.
	plain := "apiVersion: v1\nkind: Config\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"
	out, st = m.Text(nil, []byte(plain))
	assert.Equal(t, plain, string(out))
	assert.Zero(t, st.Fields)
}

func TestJSONLogLines(t *testing.T) {
	m := newMasker(t, Config{})
	sa := `{
  "type": "service_account",
  "project_id": "billing",
  "private_key_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n",
  "client_email": "billing@billing.iam.gserviceaccount.com"
}
`
	tests := []struct {
		name, in string
		gone     []string // must not survive
		keep     []string // must survive
	}{
		{"an indented service account key over several lines", "loading credentials\n" + sa + "done\n",
			[]string{"0a1b2c3d4e5f", "MIIEvQ", "billing@billing"}, []string{"loading credentials\n{\n  \"type\": ", "\ndone\n"}},
		{"a log line with a timestamp prefix", `2026-03-14T09:26:53.123456789Z {"level":"info","msg":"auth","password":"hunter2","ok":true}` + "\n",
			[]string{"hunter2"}, []string{`2026-03-14T09:26:53.123456789Z {"level":"info","msg":"auth","password":"`, `","ok":true}` + "\n"}},
		{"a brace that opens no JSON does not hold the stream back", "func main() {\n\tpassword := \"hunter2\"\n}\n",
			[]string{"hunter2"}, []string{"func main() {\n"}},
		{"a PuTTY key over several lines", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nAAAAIGcanaryKeyMaterial0123456789abcdef\nPrivate-MAC: 0a1b2c3d\nafter\n",
			[]string{"canaryKeyMaterial"}, []string{"\nafter\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole, _ := m.Text(nil, []byte(tt.in))
			for name, r := range map[string]io.Reader{"whole": strings.NewReader(tt.in), "one byte": iotest.OneByteReader(strings.NewReader(tt.in))} {
				s := m.TextStream(r)
				out, err := io.ReadAll(s)
				require.NoError(t, err)
				assert.Equal(t, string(whole), string(out), "%s: Text and TextStream agree", name)
			}
			for _, g := range tt.gone {
				assert.NotContains(t, string(whole), g)
			}
			for _, k := range tt.keep {
				assert.Contains(t, string(whole), k)
			}
		})
	}
}

// TestTextStreamJSONBlockLimit: a JSON document that outgrows the line limit is masked as
// text, line by line, and nothing is held back beyond the limit.
func TestTextStreamJSONBlockLimit(t *testing.T) {
	m := newMasker(t, Config{Limits: Limits{MaxLineBytes: 4 * lineOverlap}})
	var b strings.Builder
	b.WriteString("{\n")
	for b.Len() < 8*lineOverlap {
		b.WriteString(`  "k": "value value value value value value value value",` + "\n")
	}
	b.WriteString(`  "password": "hunter2"` + "\n}\n")
	out, err := io.ReadAll(m.TextStream(strings.NewReader(b.String())))
	require.NoError(t, err)
	assert.NotContains(t, string(out), "hunter2")
	assert.Equal(t, len(b.String())-len("hunter2")+placeholderLen, len(out))
}

// TestSecretManifestKindSpacing checks that every spacing the kind line may have runs the
// detector, not only the one space its keyword used to require.
func TestSecretManifestKindSpacing(t *testing.T) {
	m := newMasker(t, Config{})
	for _, kind := range []string{"kind: Secret", "kind:Secret", "kind:\tSecret", "kind:  Secret", "kind: \t 'Secret'", "kind:\t\"Secret\"", "  kind:Secret"} {
		t.Run(kind, func(t *testing.T) {
			indent := strings.Repeat(" ", len(kind)-len(strings.TrimLeft(kind, " ")))
			in := kind + "\n" + indent + "stringData:\n" + indent + "  api: hunter2-canary\n"
			out, st := m.Text(nil, []byte(in))
			assert.NotContains(t, string(out), "hunter2-canary")
			assert.Equal(t, 1, st.Detectors["kubernetes-secret-manifest"])
		})
	}
}

func TestSecretManifestYAML(t *testing.T) {
	m := newMasker(t, Config{})
	in := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    app: db\ndata:\n  password: aHVudGVyMg==\n  # a comment\n  cert: |\n    line one\n    line two\nstringData:\n  user: admin\ntype: Opaque\n---\nkind: ConfigMap\ndata:\n  size: XL\n"
	want := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    app: db\ndata:\n  password: <<P:aHVudGVyMg==>>\n  # a comment\n  cert: |\n    <<P:line one>>\n    <<P:line two>>\nstringData:\n  user: <<P:admin>>\ntype: Opaque\n---\nkind: ConfigMap\ndata:\n  size: XL\n"
	out, st := m.Text(nil, []byte(in))
	assert.Equal(t, expand(want), string(out))
	assert.Equal(t, map[string]int{"kubernetes-secret-manifest": 4}, st.Detectors)

	// The same manifests in a ConfigMap key, as rendered charts are kept.
	doc := `{"kind":"ConfigMap","apiVersion":"v1","data":{"manifests.yaml":` + quote(in) + `}}`
	jout, _, err := m.JSON(nil, []byte(doc), Target{})
	require.NoError(t, err)
	assert.Equal(t, `{"kind":"ConfigMap","apiVersion":"v1","data":{"manifests.yaml":`+quote(expand(want))+`}}`, string(jout))
}

// TestNestedDocumentsCopyOnlyThemselves: the nest walker copies a document in text up to its
// end, not the rest of the text, which for many documents in one text (a log of JSON lines, a
// ConfigMap value an attacker wrote) made masking quadratic.
func TestNestedDocumentsCopyOnlyThemselves(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	doc := `{"password":"hunter2xyz"}`
	text := []byte(doc + strings.Repeat("x", 1<<20))
	e, ok := w.walkNested(text)
	require.True(t, ok)
	assert.Equal(t, len(doc), e)
	assert.Less(t, len(w.nest.dst), 2*len(doc), "only the document is copied")
	require.NotEmpty(t, w.nest.edits, "the password is masked")

	text = []byte("z" + strings.Repeat(`{"token":"Zk29fLq0Pz81mMvX"}x`, 2000))
	out, st := m.Text(nil, text)
	assert.Equal(t, 2000, st.Fields)
	assert.NotContains(t, string(out), "Zk29fLq0Pz81mMvX")
}
