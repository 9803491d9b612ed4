package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretValuesOf is the reference the SecretValue hook is checked against: it decodes the JSON
// documents of body with encoding/json, independently of the engine, and returns every value of
// a Secret's data (decoded from base64 when it decodes) and stringData in a Secret, a SecretList, a watch event
// or a Table with objects.
func secretValuesOf(t *testing.T, body []byte) []string {
	t.Helper()
	type doc struct {
		Data       map[string]string `json:"data"`
		StringData map[string]string `json:"stringData"`
		Items      []json.RawMessage `json:"items"`
		Object     json.RawMessage   `json:"object"`
		Rows       []struct {
			Object json.RawMessage `json:"object"`
		} `json:"rows"`
	}
	var out []string
	var walk func(raw []byte)
	walk = func(raw []byte) {
		if len(raw) == 0 || string(raw) == "null" {
			return
		}
		var d doc
		require.NoError(t, json.Unmarshal(raw, &d))
		for _, v := range d.Data {
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				out = append(out, string(b))
			} else {
				out = append(out, v) // masked as it is
			}
		}
		for _, v := range d.StringData {
			out = append(out, v)
		}
		for _, it := range d.Items {
			walk(it)
		}
		walk(d.Object)
		for _, r := range d.Rows {
			walk(r.Object)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		walk(raw)
	}
	require.NotEmpty(t, out, "the reference found values: the test can fail")
	return out
}

// TestSecretValueHook checks that the SecretValue hook receives every value of every Secret in
// a response, whatever the shape, encoding or path through the engine, with the placeholder the
// client sees for it.
func TestSecretValueHook(t *testing.T) {
	secrets := Target{Version: "v1", Resource: "secrets"}
	watch := secrets
	watch.Watch = true
	list := fixture(t, "secretlist.json")
	events := fixture(t, "watch.jsonl")
	escaped := []byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"},"data":{"k":"\u0059\u0032FuYXJ5LWVzY2FwZWQtdmFsdWU="},"stringData":{"s":"canary-\u0073tring\nsecond line"}}`)
	kindLast := []byte(`{"metadata":{"name":"x"},"data":{"k":"Y2FuYXJ5LWtpbmQtbGFzdA=="},"kind":"Secret","apiVersion":"v1"}`)
	for _, tc := range []struct {
		name, contentType, encoding string
		body                        []byte
		target                      Target
		stream                      bool
		cfg                         Config
	}{
		{name: "secret", contentType: "application/json", body: fixture(t, "secret.json"), target: secrets},
		{name: "list", contentType: "application/json", body: list, target: secrets},
		{name: "list streamed", contentType: "application/json", body: list, target: secrets, stream: true},
		{name: "list gzip", contentType: "application/json", encoding: "gzip", body: list, target: secrets},
		{name: "list gzip streamed", contentType: "application/json", encoding: "gzip", body: list, target: secrets, stream: true},
		{name: "table with objects", contentType: "application/json;as=Table;v=v1;g=meta.k8s.io", body: fixture(t, "table.json"), target: secrets},
		{name: "watch body", contentType: "application/json", body: events, target: watch},
		{name: "watch stream", contentType: "application/json;stream=watch", body: events, target: secrets, stream: true},
		{name: "escaped strings", contentType: "application/json", body: escaped, target: secrets},
		{name: "kind after data, no hint", contentType: "application/json", body: kindLast},
		{name: "exempted key", contentType: "application/json", body: list, target: secrets,
			cfg: Config{Exemptions: []Exemption{{Kind: "Secret", Keys: []string{"ca.crt", "username"}, Detectors: []string{"secret-data"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMasker(t, tc.cfg)
			got := map[string]string{}
			target := tc.target
			target.SecretValue = func(v, ph []byte) {
				got[string(v)] = string(ph)
			}
			body := tc.body
			if tc.encoding == "gzip" {
				body = gzipped(t, body)
			}
			var out []byte
			if tc.stream {
				rd, err := m.Stream(tc.contentType, tc.encoding, iotest.HalfReader(bytes.NewReader(body)), target)
				require.NoError(t, err)
				out, err = io.ReadAll(rd)
				require.NoError(t, err)
			} else {
				var err error
				out, _, err = m.Body(tc.contentType, tc.encoding, body, target)
				require.NoError(t, err)
			}
			for _, v := range secretValuesOf(t, tc.body) {
				ph, ok := got[v]
				if !assert.True(t, ok, "value %.40q of a Secret is reported", v) {
					continue
				}
				assert.Regexp(t, placeholderRE, ph)
				exempt := bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(v))))
				if !exempt {
					assert.True(t, bytes.Contains(out, []byte(ph)) || bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(ph)))),
						"the placeholder reported for %.40q is the one the client sees", v)
				}
			}
			for v, ph := range got {
				assert.NotContains(t, v, PlaceholderPrefix, "a placeholder is not a value")
				assert.NotContains(t, ph, v)
			}
		})
	}
}

// TestSecretValueHookEdges covers what the reference parser does not: values that already are
// placeholders, Helm release Secrets, values that are not base64, and the hook left unset.
func TestSecretValueHookEdges(t *testing.T) {
	m := newMasker(t, Config{})
	secrets := Target{Version: "v1", Resource: "secrets"}
	collect := func(t *testing.T, body []byte, target Target) map[string]string {
		t.Helper()
		got := map[string]string{}
		target.SecretValue = func(v, ph []byte) { got[string(v)] = string(ph) }
		_, _, err := m.Body("application/json", "", body, target)
		require.NoError(t, err)
		return got
	}

	t.Run("masked twice reports nothing new", func(t *testing.T) {
		once, _, err := m.Body("application/json", "", fixture(t, "secret.json"), secrets)
		require.NoError(t, err)
		assert.Empty(t, collect(t, once, secrets))
	})
	t.Run("helm release payload", func(t *testing.T) {
		payload := EncodeHelmRelease(helmRelease(t))
		got := collect(t, releaseSecret(payload), secrets)
		assert.Contains(t, got, string(payload), "the release payload, decoded once, is known whole")
	})
	t.Run("data that is not base64", func(t *testing.T) {
		got := collect(t, []byte(`{"kind":"Secret","apiVersion":"v1","data":{"k":"canary not base64!"}}`), secrets)
		assert.Contains(t, got, "canary not base64!")
	})
	t.Run("number in data", func(t *testing.T) {
		got := collect(t, []byte(`{"kind":"Secret","apiVersion":"v1","data":{"k":1234567890}}`), secrets)
		assert.Contains(t, got, "1234567890")
	})
	t.Run("no hook", func(t *testing.T) {
		for _, f := range []string{"secret.json", "secretlist.json", "table.json"} {
			_, _, err := m.Body("application/json", "", fixture(t, f), secrets)
			require.NoError(t, err)
		}
	})
	t.Run("a pooled walker forgets the hook", func(t *testing.T) {
		n := 0
		target := secrets
		target.SecretValue = func([]byte, []byte) { n++ }
		_, _, err := m.Body("application/json", "", fixture(t, "secret.json"), target)
		require.NoError(t, err)
		require.NotZero(t, n)
		before := n
		for range 4 {
			_, _, err := m.Body("application/json", "", fixture(t, "secret.json"), secrets)
			require.NoError(t, err)
		}
		assert.Equal(t, before, n, "calls without the hook do not reach it")
	})
	t.Run("list of many", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(`{"kind":"SecretList","apiVersion":"v1","items":[`)
		for i := range 300 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"metadata":{"name":"s%d"},"data":{"v":%q}}`, i, base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "canary-value-%04d", i)))
		}
		b.WriteString(`]}`)
		got := collect(t, []byte(b.String()), secrets)
		for i := range 300 {
			assert.Contains(t, got, fmt.Sprintf("canary-value-%04d", i))
		}
	})
}
