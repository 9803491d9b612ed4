package masking

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretObj is a Secret manifest as a log line may hold it.
const secretObj = `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"k":"aHVudGVyMg=="}}`

// TestEscapedJSONInText: the values of secret-sounding keys in JSON whose quotes are escaped
// (JSON held in a string, printed from it or in text that is not a whole document) are
// masked, their closing quotes kept; and the objects that closed in a text that does not
// parse are masked as documents.
func TestEscapedJSONInText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // with <<P:…>> markers; "" means unchanged
	}{
		// Inputs that went through unmasked.
		{"a JSON log line cut short", `{"a":"{\"password\":\"hunter2xyz\"}"`, `{"a":"{\"password\":\"<<P:hunter2xyz>>\"}"`},
		{"escaped JSON alone", `{\"password\":\"hunter2xyz\"}`, `{\"password\":\"<<P:hunter2xyz>>\"}`},
		{"escaped key and value in prose", `x \"password\": \"hunter2xyz\"`, `x \"password\": \"<<P:hunter2xyz>>\"`},
		{"a token in escaped JSON", `{\"token\":\"hunter2xyzabc\"}`, `{\"token\":\"<<P:hunter2xyzabc>>\"}`},
		{"a line of a bracket, then a JSON line", "[\n{\"payload\":\"{\\\"password\\\":\\\"hunter2xyz\\\"}\"}", "[\n{\"payload\":\"{\\\"password\\\":\\\"<<P:hunter2xyz>>\\\"}\"}"},

		// Ways around it.
		{"held twice", `{\"cfg\":\"{\\\"password\\\":\\\"hunter2xyz\\\"}\"}`, `{\"cfg\":\"{\\\"password\\\":\\\"<<P:hunter2xyz>>\\\"}\"}`},
		{"held three times", `\\\\\\\"password\\\\\\\":\\\\\\\"hunter2xyz\\\\\\\"`, `\\\\\\\"password\\\\\\\":\\\\\\\"<<P:hunter2xyz>>\\\\\\\"`},
		{"blanks around the colon", "{\\\"password\\\" :\t\\\"hunter2xyz\\\"}", "{\\\"password\\\" :\t\\\"<<P:hunter2xyz>>\\\"}"},
		{"single quotes escaped (a Python repr)", `'{\'password\': \'hunter2xyz\', \'user\': \'bob\'}'`, `'{\'password\': \'<<P:hunter2xyz>>\', \'user\': \'bob\'}'`},
		{"quotes as \\u0022", `{\u0022password\u0022:\u0022hunter2xyz\u0022,\u0022a\u0022:1}`, `{\u0022password\u0022:\u0022<<P:hunter2xyz>>\u0022,\u0022a\u0022:1}`},
		{"a whole-word key quoted as \\u0022", `{\u0022pw\u0022:\u0022hunter2xyz\u0022}`, `{\u0022pw\u0022:\u0022<<P:hunter2xyz>>\u0022}`},
		{"\\u0022 closing a value quoted with \\\"", `{\"password\":\"hunter2xyz\u0022}`, `{\"password\":\"<<P:hunter2xyz>>\u0022}`},
		{"a quote held deeper in the value", `{\"password\":\"hun\\\"ter2\",\"a\":1}`, `{\"password\":\"<<P:hun\\\"ter2>>\",\"a\":1}`},
		{"a value that ends with a backslash", `{\"password\":\"hunter2\\\\\"}`, `{\"password\":\"<<P:hunter2\\\\>>\"}`},
		{"a value cut short at the end", `{\"password\":\"hunter2xyz`, `{\"password\":\"<<P:hunter2xyz>>`},
		{"a value cut short at a line end", "{\\\"password\\\":\\\"hunter2xyz\nnext", "{\\\"password\\\":\\\"<<P:hunter2xyz>>\nnext"},
		{"a value quoted deeper than its key", `\"password\":\\\"hunter2xyz\\\"`, `\"password\":\\\"<<P:hunter2xyz>>\\\"`},
		{"a value quoted by an odd run", `"password":\\\\\"hunter2xyz\\\\\"`, `"password":\\\\\"<<P:hunter2xyz>>\\\\\"`},
		{"an escaped value of an unescaped key", `"password":\"hunter2xyz\"`, `"password":\"<<P:hunter2xyz>>\"`},
		{"a flag value in escaped quotes", `run --password \"hunter2xyz\" now`, `run --password \"<<P:hunter2xyz>>\" now`},
		{"a number", `{\"password\":12345678}`, `{\"password\":<<P:12345678>>}`},

		// Not secrets.
		{"a key that is not secret", `{\"passwordPolicy\":\"strict\",\"tokenTTL\":\"15m\"}`, ""},
		{"a reference", `{\"password\":\"${DB_PASSWORD}\",\"token\":\"$(TOKEN)\"}`, ""},
		{"a placeholder already", `{\"password\":\"` + phFor(testKey, "hunter2xyz") + `\"}`, ""},
		{"null, a boolean, empty", `{\"password\":null,\"passwd\":true,\"pwd\":\"\",\"secret\":false}`, ""},
		{"null quoted as \\u0022", `{\u0022password\u0022:null,\u0022a\u0022:1}`, ""},
		{"a low-entropy token", `{\"token\":\"abc\"}`, ""},
		{"escaped JSON without secrets", `{\"name\":\"web\",\"replicas\":3,\"labels\":{\"tier\":\"frontend\"},\"note\":\"a \\\"b\\\" c\"}`, ""},
		{"escaped JSON as \\u0022 without secrets", `{\u0022level\u0022:\u0022info\u0022,\u0022msg\u0022:\u0022ready\u0022}`, ""},

		// Documents in text that does not parse.
		{"a Secret in a JSON line cut short", `{"level":"info","obj":` + secretObj, `{"level":"info","obj":` + strings.Replace(secretObj, "aHVudGVyMg==", "<<B:hunter2>>", 1)},
		{"a Secret in a line cut short twice over", `{"x":{"y":` + secretObj + `,"z":{"a":`, `{"x":{"y":` + strings.Replace(secretObj, "aHVudGVyMg==", "<<B:hunter2>>", 1) + `,"z":{"a":`},
		{"a Secret in an array cut short", "[\n" + secretObj + ",\n" + `{"a":`, "[\n" + strings.Replace(secretObj, "aHVudGVyMg==", "<<B:hunter2>>", 1) + ",\n" + `{"a":`},
		{"a Secret in an array text follows", "[" + secretObj + "] done", "[" + strings.Replace(secretObj, "aHVudGVyMg==", "<<B:hunter2>>", 1) + "] done"},
		{"a Secret with braces in its strings in a line cut short", `{"level":"info","obj":` + strings.Replace(secretObj, `"name":"db"`, `"name":"db","annotations":{"a":"{","b":"}}"}`, 1) + `,"m":"{"`, `{"level":"info","obj":` + strings.Replace(strings.Replace(secretObj, `"name":"db"`, `"name":"db","annotations":{"a":"{","b":"}}"}`, 1), "aHVudGVyMg==", "<<B:hunter2>>", 1) + `,"m":"{"`},
		{"a Secret in a string of a line cut short is not a document", `{"msg":"` + strings.ReplaceAll(secretObj, `"`, `'`) + `"`, ""},
	}
	m := newMasker(t, Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.in
			if tt.want != "" {
				want = expand(tt.want)
			}
			out, st := m.Text(nil, []byte(tt.in))
			assert.Equal(t, want, string(out))
			assert.Equal(t, tt.want != "", st.Fields > 0, "stats %v", st.Detectors)

			again, st2 := m.Text(nil, out)
			assert.Equal(t, string(out), string(again), "masking twice changes nothing")
			assert.Zero(t, st2.Fields)

			// Line by line, as logs stream.
			streamed, err := io.ReadAll(m.TextStream(strings.NewReader(tt.in)))
			require.NoError(t, err)
			assert.Equal(t, want, string(streamed))
		})
	}
}

var placeholderAnyRE = regexp.MustCompile(`gatehouse:masked:[0-9a-f]{12}`)

// TestEscapedJSONLikeJSON: a value of a secret-sounding key is masked in escaped JSON as it
// is in JSON, whatever it is.
func TestEscapedJSONLikeJSON(t *testing.T) {
	m := newMasker(t, Config{})
	values := []string{`"hunter2xyz"`, `"Zk29fLq0Pz81mMvX"`, `"abc"`, `""`, `null`, `true`, `12345678`, `"${A}"`, `"the usual one"`,
		`"a b c d e f"`, `"x:y"`, `"gatehouse:masked:0123456789ab"`, `"bearer Zk29fLq0Pz81mMvX"`, `"<redacted>"`, `"a\"b"`}
	for _, key := range []string{"password", "api_key", "token", "client_secret", "passwordPolicy", "name"} {
		for _, v := range values {
			plain := `"a":1, "` + key + `": ` + v + `, "b":2`
			po, pst := m.Text(nil, []byte(plain))
			// The placeholders differ where the value held an escape.
			po = placeholderAnyRE.ReplaceAll(po, []byte("MASKED"))
			once := func(q string) func(string) string {
				return func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, q) }
			}
			twice := func(s string) string { return once(`\"`)(once(`\"`)(s)) }
			for _, esc := range []func(string) string{once(`\"`), twice, once(`\u0022`)} {
				escaped := esc(plain)
				if strings.Contains(escaped, `\u0022bearer`) {
					continue // \b of the bearer-token expression: 2bearer is one word
				}
				eo, est := m.Text(nil, []byte(escaped))
				assert.Equal(t, pst.Detectors, est.Detectors, "%s", escaped)
				eo = placeholderAnyRE.ReplaceAll(eo, []byte("MASKED"))
				assert.Equal(t, esc(string(po)), string(eo), "%s", escaped)
			}
		}
	}
}
