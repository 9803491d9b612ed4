package masking

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ph returns the placeholder of v under the test key.
func ph(v string) string { return phFor(testKey, v) }

func phFor(key Key, v string) string { return string(newHasher(key).plain([]byte(v))) }

// b64ph returns the base64 placeholder of v (the decoded bytes of a Secret data value).
func b64ph(v string) string { return base64.StdEncoding.EncodeToString([]byte(ph(v))) }

var markerRE = regexp.MustCompile(`<<([PB]):([^>]*)>>`)

// expand replaces <<P:value>> by the placeholder of value and <<B:value>> by its base64
// placeholder under the test key, so that expected outputs can be written literally.
func expand(s string) string { return expandFor(testKey, s) }

func expandFor(key Key, s string) string {
	return markerRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := markerRE.FindStringSubmatch(m)
		p := phFor(key, sub[2])
		if sub[1] == "B" {
			return base64.StdEncoding.EncodeToString([]byte(p))
		}
		return p
	})
}

func TestJSONShapes(t *testing.T) {
	secrets := Target{Version: "v1", Resource: "secrets"}
	configmaps := Target{Version: "v1", Resource: "configmaps"}
	tests := []struct {
		name   string
		target Target
		in     string
		want   string         // with <<P:…>> and <<B:…>> markers; "" means unchanged
		stats  map[string]int // expected Stats.Detectors; nil means nothing masked
	}{
		{
			name:   "secret",
			target: secrets,
			in:     `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"n"},"data":{"password":"aHVudGVyMg==","empty":""},"stringData":{"token":"abc"},"type":"Opaque"}`,
			want:   `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"n"},"data":{"password":"<<B:hunter2>>","empty":"<<B:>>"},"stringData":{"token":"<<P:abc>>"},"type":"Opaque"}`,
			stats:  map[string]int{"secret-data": 2, "secret-string-data": 1},
		},
		{
			name:   "data and stringData share placeholders",
			target: secrets,
			in:     `{"kind":"Secret","apiVersion":"v1","data":{"a":"aHVudGVyMg=="},"stringData":{"b":"hunter2"}}`,
			want:   `{"kind":"Secret","apiVersion":"v1","data":{"a":"<<B:hunter2>>"},"stringData":{"b":"<<P:hunter2>>"}}`,
			stats:  map[string]int{"secret-data": 1, "secret-string-data": 1},
		},
		{
			name:   "secret list items without kind",
			target: secrets,
			in:     `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"},"data":{"k":"YQ=="},"type":"Opaque"},{"metadata":{"name":"b"},"data":{"k":"Yg=="}}]}`,
			want:   `{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"a"},"data":{"k":"<<B:a>>"},"type":"Opaque"},{"metadata":{"name":"b"},"data":{"k":"<<B:b>>"}}]}`,
			stats:  map[string]int{"secret-data": 2},
		},
		{
			name:  "secret list without a target",
			in:    `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"a"},"data":{"k":"YQ=="}}]}`,
			want:  `{"kind":"SecretList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"a"},"data":{"k":"<<B:a>>"}}]}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:  "v1 List with kinds",
			in:    `{"kind":"List","apiVersion":"v1","metadata":{},"items":[{"kind":"Secret","apiVersion":"v1","data":{"k":"YQ=="}},{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"plain value"}}]}`,
			want:  `{"kind":"List","apiVersion":"v1","metadata":{},"items":[{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:a>>"}},{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"plain value"}}]}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:  "secret data before kind without hint",
			in:    `{"apiVersion":"v1","data":{"k":"YQ=="},"kind":"Secret","metadata":{"name":"a"}}`,
			want:  `{"apiVersion":"v1","data":{"k":"<<B:a>>"},"kind":"Secret","metadata":{"name":"a"}}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:   "secret data before kind with a configmaps hint",
			target: configmaps,
			in:     `{"data":{"k":"YQ=="},"kind":"Secret","apiVersion":"v1"}`,
			want:   `{"data":{"k":"<<B:a>>"},"kind":"Secret","apiVersion":"v1"}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name: "configmap data before kind without hint",
			in:   `{"apiVersion":"v1","data":{"k":"YQ=="},"kind":"ConfigMap"}`,
		},
		{
			name:   "configmap with a configmaps hint",
			target: configmaps,
			in:     `{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"YQ=="}}`,
		},
		{
			name:  "kind named twice",
			in:    `{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"YQ=="},"kind":"Secret"}`,
			want:  `{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"<<B:a>>"},"kind":"Secret"}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:  "escaped kind",
			in:    `{"kind":"Secr\u0065t","apiVersion":"v1","data":{"k":"YQ=="}}`,
			want:  `{"kind":"Secr\u0065t","apiVersion":"v1","data":{"k":"<<B:a>>"}}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:   "escaped kind with a configmaps hint",
			target: configmaps,
			in:     `{"kind":"Secr\u0065t","apiVersion":"v1","data":{"k":"YQ=="}}`,
			want:   `{"kind":"Secr\u0065t","apiVersion":"v1","data":{"k":"<<B:a>>"}}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name:   "escaped key",
			target: secrets,
			in:     `{"kind":"Secret","apiVersion":"v1","d\u0061ta":{"k":"YQ=="}}`,
			want:   `{"kind":"Secret","apiVersion":"v1","d\u0061ta":{"k":"<<B:a>>"}}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name:  "unknown object data that is not base64",
			in:    `{"data":{"k":"not base64!"}}`,
			want:  `{"data":{"k":"<<P:not base64!>>"}}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:   "numbers and nulls under secret data",
			target: secrets,
			in:     `{"data":{"n":12345,"z":null,"b":true,"o":{"x":"eQ=="}}}`,
			want:   `{"data":{"n":"<<P:12345>>","z":null,"b":true,"o":{"x":"<<B:y>>"}}}`,
			stats:  map[string]int{"secret-data": 2},
		},
		{
			name:   "watch event with a secret without kind",
			target: secrets,
			in:     `{"type":"ADDED","object":{"metadata":{"name":"a"},"data":{"k":"YQ=="}}}`,
			want:   `{"type":"ADDED","object":{"metadata":{"name":"a"},"data":{"k":"<<B:a>>"}}}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name:   "table with includeObject=Object",
			target: secrets,
			in:     `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"1"},"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name must be unique.","priority":0}],"rows":[{"cells":["a","Opaque",1,"1d"],"object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a"},"data":{"k":"YQ=="}}}]}`,
			want:   `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"1"},"columnDefinitions":[{"name":"Name","type":"string","format":"name","description":"Name must be unique.","priority":0}],"rows":[{"cells":["a","Opaque",1,"1d"],"object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"a"},"data":{"k":"<<B:a>>"}}}]}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name:   "table row object without kind",
			target: secrets,
			in:     `{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["a"],"object":{"metadata":{"name":"a"},"data":{"k":"YQ=="}}}]}`,
			want:   `{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["a"],"object":{"metadata":{"name":"a"},"data":{"k":"<<B:a>>"}}}]}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name:   "table with partial object metadata and last-applied",
			target: secrets,
			in:     `{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["a"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"a","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"k\":\"YQ==\"},\"kind\":\"Secret\"}\n"}}}}]}`,
			want:   `{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["a"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"a","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"k\":\"<<B:a>>\"},\"kind\":\"Secret\"}\n"}}}}]}`,
			stats:  map[string]int{"secret-data": 1},
		},
		{
			name: "last-applied of a configmap keeps its data",
			in:   `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"k\":\"YQ==\"},\"kind\":\"ConfigMap\"}\n"}}}`,
		},
		{
			name:  "last-applied that does not parse",
			in:    `{"kind":"Pod","apiVersion":"v1","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":"}}}`,
			want:  `{"kind":"Pod","apiVersion":"v1","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"<<P:{"apiVersion":>>"}}}`,
			stats: map[string]int{"last-applied-unparsable": 1},
		},
		{
			name:  "status with an echoed secret value",
			in:    `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Secret \"s\" is invalid: data[password]: Invalid value: \"hunter2\": bad","code":422}`,
			want:  `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Secret \"s\" is invalid: data[password]: Invalid value: \"<<P:hunter2>>\": bad","code":422}`,
			stats: map[string]int{"field-error-value": 1},
		},
		{
			name:  "token request",
			in:    `{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{"audiences":["api"]},"status":{"token":"opaque-token","expirationTimestamp":"2026-01-01T00:00:00Z"}}`,
			want:  `{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{"audiences":["api"]},"status":{"token":"<<P:opaque-token>>","expirationTimestamp":"2026-01-01T00:00:00Z"}}`,
			stats: map[string]int{"token-request": 1},
		},
		{
			name:  "token review",
			in:    `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":"opaque-token"},"status":{"authenticated":true}}`,
			want:  `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":"<<P:opaque-token>>"},"status":{"authenticated":true}}`,
			stats: map[string]int{"token-review": 1},
		},
		{
			name:  "audit event with a patch body",
			in:    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"patch","objectRef":{"resource":"secrets","namespace":"n","name":"s","apiVersion":"v1"},"requestObject":{"data":{"k":"YQ=="}}}`,
			want:  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"patch","objectRef":{"resource":"secrets","namespace":"n","name":"s","apiVersion":"v1"},"requestObject":{"data":{"k":"<<B:a>>"}}}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name: "audit event with a configmap patch body",
			in:   `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"configmaps","apiVersion":"v1"},"requestObject":{"data":{"k":"YQ=="}}}`,
		},
		{
			name:  "audit event with objectRef after requestObject",
			in:    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","requestObject":{"data":{"k":"YQ=="}},"objectRef":{"resource":"configmaps","apiVersion":"v1"}}`,
			want:  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","requestObject":{"data":{"k":"<<B:a>>"}},"objectRef":{"resource":"configmaps","apiVersion":"v1"}}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:  "audit event list items without kind",
			in:    `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"level":"Request","objectRef":{"resource":"secrets","apiVersion":"v1"},"requestObject":{"stringData":{"k":"v"}}}]}`,
			want:  `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"level":"Request","objectRef":{"resource":"secrets","apiVersion":"v1"},"requestObject":{"stringData":{"k":"<<P:v>>"}}}]}`,
			stats: map[string]int{"secret-string-data": 1},
		},
		{
			name:  "audit event with a JSON patch of a secret",
			in:    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"secrets","apiVersion":"v1"},"requestObject":[{"op":"add","path":"/data/k","value":"YQ=="},{"op":"replace","path":"/metadata/labels/app","value":"web"}]}`,
			want:  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"secrets","apiVersion":"v1"},"requestObject":[{"op":"add","path":"/data/k","value":"<<B:a>>"},{"op":"replace","path":"/metadata/labels/app","value":"web"}]}`,
			stats: map[string]int{"secret-data": 1},
		},
		{
			name:  "audit event with a JSON patch of a configmap",
			in:    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"configmaps","apiVersion":"v1"},"requestObject":[{"value":"hunter2","op":"add","path":"/data/DB_PASSWORD"},{"op":"add","path":"/data/color","value":"blue"}]}`,
			want:  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"configmaps","apiVersion":"v1"},"requestObject":[{"value":"<<P:hunter2>>","op":"add","path":"/data/DB_PASSWORD"},{"op":"add","path":"/data/color","value":"blue"}]}`,
			stats: map[string]int{"password-assignment": 1},
		},
		{
			name:  "audit request URI",
			in:    `{"kind":"Event","apiVersion":"audit.k8s.io/v1","requestURI":"/api/v1/namespaces/n/pods/p/exec?command=mysql\u0026command=--password\u0026command=hunter2\u0026container=db"}`,
			want:  `{"kind":"Event","apiVersion":"audit.k8s.io/v1","requestURI":"/api/v1/namespaces/n/pods/p/exec?command=mysql\u0026command=--password\u0026command=` + strings.ReplaceAll(ph("hunter2"), ":", "%3A") + `\u0026container=db"}`,
			stats: map[string]int{"password-assignment": 1},
		},
		{
			name:  "admission review",
			in:    `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Secret"},"resource":{"group":"","version":"v1","resource":"secrets"},"object":{"metadata":{"name":"a"},"data":{"k":"YQ=="}},"oldObject":{"kind":"Secret","apiVersion":"v1","stringData":{"k":"b"}}}}`,
			want:  `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Secret"},"resource":{"group":"","version":"v1","resource":"secrets"},"object":{"metadata":{"name":"a"},"data":{"k":"<<B:a>>"}},"oldObject":{"kind":"Secret","apiVersion":"v1","stringData":{"k":"<<P:b>>"}}}}`,
			stats: map[string]int{"secret-data": 1, "secret-string-data": 1},
		},
		{
			name:  "container env, value before name, and flags",
			in:    `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"name":"c","args":["--db-password","hunter2","--verbose","--level","debug"],"env":[{"value":"hunter2","name":"DB_PASSWORD"},{"name":"API_KEY","value":"q8Zr2kLw9XvB4nTc"},{"name":"SORT_KEY","value":"createdAt"},{"name":"GREETING","value":"hello"}]}]}}`,
			want:  `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"name":"c","args":["--db-password","<<P:hunter2>>","--verbose","--level","debug"],"env":[{"value":"<<P:hunter2>>","name":"DB_PASSWORD"},{"name":"API_KEY","value":"<<P:q8Zr2kLw9XvB4nTc>>"},{"name":"SORT_KEY","value":"createdAt"},{"name":"GREETING","value":"hello"}]}]}}`,
			stats: map[string]int{"password-assignment": 2, "keyword-entropy": 1},
		},
		{
			name: "env references are kept",
			in:   `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"env":[{"name":"DB_PASSWORD","value":"$(PASSWORD_FROM_SECRET)"},{"name":"DATABASE_URL","value":"postgres://app:$(DB_PASSWORD)@db:5432/app"}]}]}}`,
		},
		{
			name:  "docker config object",
			in:    `{"kind":"RegistryMirror","apiVersion":"example.com/v1","spec":{"auths":{"r.example.com":{"auth":"dTpw","username":"u","password":"p"}}}}`,
			want:  `{"kind":"RegistryMirror","apiVersion":"example.com/v1","spec":{"auths":{"r.example.com":{"auth":"<<P:dTpw>>","username":"<<P:u>>","password":"<<P:p>>"}}}}`,
			stats: map[string]int{"docker-config-auth": 3},
		},
		{
			name:  "configmap binary data",
			in:    `{"kind":"ConfigMap","apiVersion":"v1","binaryData":{"logo.png":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","signing.key":"AAECAw==","conf":"cGFzc3dvcmQ9aHVudGVyMgo="}}`,
			want:  `{"kind":"ConfigMap","apiVersion":"v1","binaryData":{"logo.png":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==","signing.key":"<<B:` + "\x00\x01\x02\x03" + `>>","conf":"<<B:password=hunter2` + "\n" + `>>"}}`,
			stats: map[string]int{"keyword-entropy": 1, "password-assignment": 1},
		},
		{
			name:   "JSON-escaped private key in a configmap",
			target: configmaps,
			in:     `{"kind":"ConfigMap","apiVersion":"v1","data":{"key.pem":"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"}}`,
			want:   `{"kind":"ConfigMap","apiVersion":"v1","data":{"key.pem":"<<P:-----BEGIN RSA PRIVATE KEY-----` + "\n" + `MIIEowIBAAKCAQEA` + "\n" + `-----END RSA PRIVATE KEY----->>\n"}}`,
			stats:  map[string]int{"pem-private-key": 1},
		},
		{
			name: "non-secret values are kept",
			in:   `{"kind":"ConfigMap","apiVersion":"v1","data":{"uid":"c0a8e3f2-7b1d-4e5a-9c6f-2d8b0e4a1f37","sha":"9fceb02d0ae598e95dc970b74767f19372d61af8","url":"https://example.com/path?q=1","token-ttl":"3600","secretName":"db-credentials","tolerations":"node.kubernetes.io/not-ready"}}`,
		},
		{
			name: "match expression keys are kept",
			in:   `{"kind":"Deployment","apiVersion":"apps/v1","spec":{"selector":{"matchExpressions":[{"key":"app.kubernetes.io/name","operator":"In","values":["web"]}]},"template":{"spec":{"tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists"}]}}}}`,
		},
		{
			name:  "deep nesting gets the union of all rules",
			in:    strings.Repeat(`{"items":[`, 20) + `{"kind":"ConfigMap","data":{"k":"YQ=="}}` + strings.Repeat(`]}`, 20),
			want:  strings.Repeat(`{"items":[`, 20) + `{"kind":"ConfigMap","data":{"k":"<<B:a>>"}}` + strings.Repeat(`]}`, 20),
			stats: map[string]int{"secret-data": 1},
		},
		{
			name: "scalar document",
			in:   `"just a string"`,
		},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := m.JSON([]byte("prefix:"), []byte(tt.in), tt.target)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(out), "prefix:"), "JSON must append to dst")
			out = out[len("prefix:"):]
			want := tt.in
			if tt.want != "" {
				want = expand(tt.want)
			}
			assert.Equal(t, want, string(out))
			assert.Equal(t, tt.stats, st.Detectors)
			n := 0
			for _, v := range tt.stats {
				n += v
			}
			assert.Equal(t, n, st.Fields)
		})
	}
}

func TestFixtures(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		file        string
		contentType string
		target      Target
		detectors   []string // names that must appear in the stats
		keep        []string // non-secret values that must survive
	}{
		{"secret.json", "application/json", Target{Version: "v1", Resource: "secrets", Namespace: "payments", Name: "db-credentials"},
			[]string{"secret-data"}, []string{`"name":"db-credentials"`, `"type":"Opaque"`, "kubectl-client-side-apply"}},
		{"secretlist.json", "application/json", Target{Version: "v1", Resource: "secrets", Namespace: "payments"},
			[]string{"secret-data"}, []string{`"type":"kubernetes.io/dockerconfigjson"`, "billing-token"}},
		{"pod.json", "application/json", Target{Version: "v1", Resource: "pods", Namespace: "payments", Name: "billing-api"},
			[]string{"password-assignment", "keyword-entropy", "aws-access-key-id", "github-token", "jwt", "url-password"},
			[]string{`"value":"info"`, `"value":"X-Request-Id"`, "--log-level=info", `"key":"password"`, "registry.example.com/billing-api:1.4.2"}},
		{"configmap.json", "application/json", Target{Version: "v1", Resource: "configmaps", Namespace: "payments", Name: "billing-config"},
			[]string{"password-assignment", "docker-config-auth", "slack-webhook", "gcp-service-account-key", "azure-storage-key", "stripe-key", "keyword-entropy"},
			[]string{"9fceb02d0ae598e95dc970b74767f19372d61af8", "c0a8e3f2-7b1d-4e5a-9c6f-2d8b0e4a1f37", "iVBORw0KGgo", "spring.datasource.username=billing", "client_email"}},
		{"tokenrequest.json", "application/json", Target{Version: "v1", Resource: "serviceaccounts", Subresource: "token", Namespace: "payments", Name: "billing"},
			[]string{"token-request"}, []string{`"expirationSeconds":3600`}},
		{"table.json", "application/json;as=Table;v=v1;g=meta.k8s.io", Target{Version: "v1", Resource: "secrets", Namespace: "payments"},
			[]string{"secret-data"}, []string{"Name must be unique within a namespace", `"cells":["db-credentials","Opaque",2,`}},
		{"status.json", "application/json", Target{Version: "v1", Resource: "secrets", Namespace: "payments", Name: "db-credentials"},
			[]string{"field-error-value"}, []string{`"code":422`}},
		{"audit-eventlist.json", "application/json", Target{},
			[]string{"secret-data", "secret-string-data", "token-request", "password-assignment"}, []string{`"verb":"patch"`, "authorization.k8s.io/reason"}},
		{"watch.jsonl", "application/json;stream=watch", Target{Version: "v1", Resource: "secrets"},
			[]string{"secret-data", "jwt"}, []string{`"type":"BOOKMARK"`, `"k8s.io/initial-events-end":"true"`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := fixture(t, tt.file)
			out, st, err := m.Body(tt.contentType, "", in, tt.target)
			require.NoError(t, err)
			requireNoCanary(t, out)
			if tt.file == "secret.json" || tt.file == "secretlist.json" || tt.file == "table.json" {
				require.NotContains(t, string(out), "YmlsbGluZw==", "Secret data must be masked")
			}
			if strings.Contains(tt.contentType, "watch") {
				require.Len(t, lines(out), len(lines(in)))
				for _, l := range lines(out) {
					requireValidJSON(t, []byte(l))
				}
			} else {
				requireValidJSON(t, out)
			}
			for _, d := range tt.detectors {
				assert.Contains(t, st.Detectors, d)
			}
			for _, k := range tt.keep {
				assert.Contains(t, string(out), k)
			}
			// Masking is idempotent: masked output has nothing left to mask.
			again, st2, err := m.Body(tt.contentType, "", out, tt.target)
			require.NoError(t, err)
			assert.Equal(t, 0, st2.Fields, "masking twice must find nothing new")
			assert.Equal(t, string(out), string(again))
		})
	}
}

func TestNestedLastApplied(t *testing.T) {
	m := newMasker(t, Config{})
	quote := func(s string) string { return string(appendQuoted(nil, []byte(s))) }
	doc := `{"apiVersion":"v1","data":{"k":"YQ=="},"kind":"Secret"}`
	for range maxEmbedded + 2 {
		doc = `{"kind":"Secret","apiVersion":"v1","metadata":{"annotations":{"` + lastAppliedKey + `":` + quote(doc) + `}}}`
	}
	out, st, err := m.JSON(nil, []byte(doc), Target{})
	require.NoError(t, err)
	requireValidJSON(t, out)
	assert.NotContains(t, string(out), "YQ==")
	assert.Equal(t, 1, st.Detectors["last-applied-unparsable"], "beyond the nesting limit the annotation is replaced")
}

func TestJSONPatchOfTheWholeObject(t *testing.T) {
	m := newMasker(t, Config{})
	in := `[{"op":"replace","path":"","value":{"kind":"Secret","apiVersion":"v1","data":{"k":"YQ=="}}},{"op":"test","path":"/stringData/x","value":"v"},{"op":"add","value":"YQ=="}]`
	out, st, err := m.JSON(nil, []byte(in), Target{Resource: "secrets"})
	require.NoError(t, err)
	assert.Equal(t, expand(`[{"op":"replace","path":"","value":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:a>>"}}},{"op":"test","path":"/stringData/x","value":"<<P:v>>"},{"op":"add","value":"<<B:a>>"}]`), string(out))
	assert.Equal(t, map[string]int{"secret-data": 2, "secret-string-data": 1}, st.Detectors)
}

func TestExemptionByObject(t *testing.T) {
	m := newMasker(t, Config{Exemptions: []Exemption{
		{Namespace: "kube-public", Name: "cluster-info", Kind: "ConfigMap"},
	}})
	cm := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cluster-info","namespace":"kube-public"},"data":{"sample":"` + testJWT() + `"}}`
	out, st, err := m.JSON(nil, []byte(cm), Target{})
	require.NoError(t, err)
	assert.Equal(t, cm, string(out))
	assert.Zero(t, st.Fields)

	other := strings.Replace(cm, `"kube-public"`, `"default"`, 1)
	out, st, err = m.JSON(nil, []byte(other), Target{})
	require.NoError(t, err)
	assert.NotEqual(t, other, string(out))
	assert.Equal(t, 1, st.Fields)
}
