package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// The fuzz targets check three properties on arbitrary input: the engine never panics, what it
// returns is valid JSON (or the text it was given, masked), and secrets planted in secret
// positions of generated documents never come out, whatever the member order, escaping,
// whitespace and noise the fuzzer chooses. Run them with, e.g.,
//
//	go test -run='^$' -fuzz=FuzzJSON -fuzztime=60s ./masking

// rnd draws choices from fuzz input; exhausted input yields zeros.
type rnd struct {
	b []byte
	n int
}

func (r *rnd) byte() byte {
	if r.n >= len(r.b) {
		return 0
	}
	c := r.b[r.n]
	r.n++
	return c
}

func (r *rnd) intn(n int) int { return int(r.byte()) % n }
func (r *rnd) bool() bool     { return r.byte()&1 == 1 }

// member and obj build JSON objects whose member order the generator controls.
type member struct {
	k string
	v any
}

type obj []member

// rawJSON is inserted verbatim.
type rawJSON []byte

// gen writes generated documents.
type gen struct {
	r        *rnd
	noise    []byte // a JSON value or text from the fuzz input, free of canaries
	canaries []string
	n        int
}

func (g *gen) canary() string {
	g.n++
	// High entropy, so that the keyword-entropy rule applies where a canary is only keyed.
	c := fmt.Sprintf("CaNaRy-%d-%02x%02x-Zk3qP9xW", g.n, g.r.byte(), g.r.byte())
	g.canaries = append(g.canaries, c)
	return c
}

func (g *gen) b64canary() string { return base64.StdEncoding.EncodeToString([]byte(g.canary())) }

// ws writes optional whitespace.
func (g *gen) ws(b *bytes.Buffer) {
	switch g.r.intn(8) {
	case 1:
		b.WriteByte(' ')
	case 2:
		b.WriteString("\n  ")
	case 3:
		b.WriteString("\t\r\n")
	}
}

// str writes a JSON string, escaping some letters with \u when the fuzzer says so.
func (g *gen) str(b *bytes.Buffer, s string) {
	if !g.r.bool() || g.r.intn(4) != 0 {
		enc, _ := json.Marshal(s)
		b.Write(enc)
		return
	}
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(b, `\u%04x`, c)
		case isLower(c) && g.r.intn(3) == 0:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func (g *gen) write(b *bytes.Buffer, v any) {
	g.ws(b)
	switch v := v.(type) {
	case string:
		g.str(b, v)
	case rawJSON:
		b.Write(v)
	case obj:
		// Shuffle members and add noise members, as the fuzzer chooses.
		ms := append(obj(nil), v...)
		for i := len(ms) - 1; i > 0; i-- {
			if g.r.intn(3) == 0 {
				j := g.r.intn(i + 1)
				ms[i], ms[j] = ms[j], ms[i]
			}
		}
		if g.r.intn(4) == 0 && g.noise != nil {
			// Noise may name a kind or apiVersion a second time, but not name one for an
			// object that has none: that would make it another type.
			keys := []string{"items", "object", "metadata", "type", "rows", "objectRef", "x", "spec", "status", "data"}
			for _, m := range ms {
				if m.k == "kind" || m.k == "apiVersion" {
					keys = append(keys, m.k)
				}
			}
			ms = append(ms, member{keys[g.r.intn(len(keys))], rawJSON(g.noise)})
		}
		b.WriteByte('{')
		for i, m := range ms {
			if i > 0 {
				b.WriteByte(',')
			}
			g.ws(b)
			g.str(b, m.k)
			g.ws(b)
			b.WriteByte(':')
			g.write(b, m.v)
		}
		g.ws(b)
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			g.write(b, e)
		}
		b.WriteByte(']')
	case int:
		fmt.Fprint(b, v)
	case nil:
		b.WriteString("null")
	}
	g.ws(b)
}

func (g *gen) encode(v any) string {
	var b bytes.Buffer
	g.write(&b, v)
	return b.String()
}

// maybe returns the members, keeping the optional ones (kind, apiVersion) as the fuzzer says.
func (g *gen) maybe(optional obj, rest ...member) obj {
	var o obj
	for _, m := range optional {
		if g.r.intn(4) != 0 {
			o = append(o, m)
		}
	}
	return append(o, rest...)
}

// secret returns a Secret with canaries in data, stringData and its last-applied annotation.
func (g *gen) secret(withKind bool) obj {
	var tm obj
	if withKind {
		tm = obj{{"kind", "Secret"}, {"apiVersion", "v1"}}
	}
	applied := g.encode(g.maybe(obj{{"kind", "Secret"}, {"apiVersion", "v1"}},
		member{"data", obj{{"password", g.b64canary()}}}, member{"metadata", obj{{"name", "s"}}}))
	return g.maybe(tm,
		member{"metadata", obj{{"name", "s"}, {"namespace", "n"}, {"annotations", obj{{lastAppliedKey, applied}, {"team", "payments"}}}}},
		member{"data", obj{{"password", g.b64canary()}, {"token", g.b64canary()}, {"empty", ""}}},
		member{"stringData", obj{{"extra", g.canary()}}},
		member{"type", "Opaque"},
	)
}

// pod returns a Pod with canaries in its environment and arguments.
func (g *gen) pod() obj {
	aws := "AKIA" + strings.Repeat("Q3EGRJ7X", 2)
	jwt := testJWT()
	g.canaries = append(g.canaries, aws, jwt)
	return g.maybe(obj{{"kind", "Pod"}, {"apiVersion", "v1"}},
		member{"metadata", obj{{"name", "p"}}},
		member{"spec", obj{{"containers", []any{obj{
			{"name", "c"},
			{"args", []any{"--db-password", g.canary(), "--verbose"}},
			{"env", []any{
				obj{{"name", "DB_PASSWORD"}, {"value", g.canary()}},
				obj{{"name", "CLOUD_KEY_ID"}, {"value", aws}},
				obj{{"name", "FORWARD_HEADER"}, {"value", "Bearer " + jwt}},
				obj{{"name", "LOG_LEVEL"}, {"value", "info"}},
			}},
		}}}}},
	)
}

// document returns a generated document and the Target to mask it with.
func (g *gen) document() (string, Target) {
	secrets := Target{Resource: "secrets"}
	pick := func(t Target) Target {
		if g.r.bool() {
			return t
		}
		return Target{}
	}
	switch g.r.intn(10) {
	case 0:
		return g.encode(g.secret(true)), pick(secrets)
	case 1:
		items := []any{g.secret(false), g.secret(false)}
		return g.encode(g.maybe(obj{{"kind", "SecretList"}, {"apiVersion", "v1"}}, member{"metadata", obj{}}, member{"items", items})), pick(secrets)
	case 2:
		return g.encode(g.maybe(obj{{"kind", "List"}, {"apiVersion", "v1"}}, member{"items", []any{g.secret(true), g.pod()}})), Target{}
	case 3:
		return g.encode(obj{{"type", "MODIFIED"}, {"object", g.secret(g.r.bool())}}), pick(secrets)
	case 4:
		row := obj{{"cells", []any{"s", "Opaque", 2, "1d"}}, {"object", g.secret(g.r.bool())}}
		return g.encode(g.maybe(obj{{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}}, member{"rows", []any{row}})), pick(secrets)
	case 5:
		return g.encode(g.maybe(obj{{"kind", "TokenRequest"}, {"apiVersion", "authentication.k8s.io/v1"}},
			member{"spec", obj{{"audiences", []any{"api"}}}}, member{"status", obj{{"token", g.canary()}}})), pick(Target{Resource: "serviceaccounts", Subresource: "token"})
	case 6:
		patch := g.maybe(nil, member{"data", obj{{"password", g.b64canary()}}}, member{"stringData", obj{{"k", g.canary()}}})
		ev := g.maybe(obj{{"kind", "Event"}, {"apiVersion", "audit.k8s.io/v1"}},
			member{"objectRef", obj{{"resource", "secrets"}, {"apiVersion", "v1"}}},
			member{"requestObject", patch},
			member{"responseObject", g.secret(true)},
			member{"requestURI", "/api/v1/namespaces/n/secrets/s?token=" + g.canary()},
		)
		return g.encode(g.maybe(obj{{"kind", "EventList"}, {"apiVersion", "audit.k8s.io/v1"}}, member{"items", []any{ev}})), Target{}
	case 7:
		return g.encode(g.pod()), pick(Target{Resource: "pods"})
	case 8:
		return g.encode(g.maybe(obj{{"kind", "ConfigMap"}, {"apiVersion", "v1"}},
			member{"data", obj{{"DB_PASSWORD", g.canary()}, {"app.properties", "db.password=" + g.canary() + "\nx=y"}}},
			member{"binaryData", obj{{"signing.key", g.b64canary()}}})), pick(Target{Resource: "configmaps"})
	default:
		ops := []any{obj{{"op", "add"}, {"path", "/data/password"}, {"value", g.b64canary()}}, obj{{"op", "add"}, {"path", "/stringData"}, {"value", obj{{"k", g.canary()}}}}}
		return g.encode(obj{{"kind", "Event"}, {"apiVersion", "audit.k8s.io/v1"}, {"objectRef", obj{{"resource", "secrets"}}}, {"requestObject", ops}}), Target{}
	}
}

// newGen prepares a generator: the fuzz input is both the noise and the source of choices.
func newGen(data []byte) *gen {
	g := &gen{r: &rnd{b: data}}
	if json.Valid(data) && utf8.Valid(data) && !bytes.Contains(bytes.ToLower(data), []byte("canary")) && !bytes.Contains(data, []byte("Q2FOYVJ5")) {
		g.noise = bytes.TrimSpace(data)
	} else if len(data) > 0 {
		enc, _ := json.Marshal(strings.ToValidUTF8(strings.ReplaceAll(strings.ToLower(string(data)), "canary", "c"), ""))
		g.noise = enc
	}
	return g
}

// requireNoPlanted fails if out holds a planted canary, plain or base64-encoded.
func (g *gen) requireNoPlanted(t *testing.T, out []byte, doc string) {
	t.Helper()
	for _, c := range g.canaries {
		if bytes.Contains(out, []byte(c)) || bytes.Contains(out, []byte(base64.StdEncoding.EncodeToString([]byte(c)))) {
			t.Fatalf("planted secret %q leaked\ninput:  %s\noutput: %s", c, doc, out)
		}
	}
}

func addSeeds(f *testing.F) {
	for _, name := range []string{"secret.json", "secretlist.json", "pod.json", "configmap.json", "tokenrequest.json", "table.json", "status.json", "audit-eventlist.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"apiVersion":"v1","data":{"k":"YQ=="},"kind":"Secret"}`))
	f.Add([]byte(`{"kind":"ConfigMap","data":{"k":"YQ=="},"kind":"Secret"}`))
	f.Add([]byte(`[{"op":"add","path":"/data/k","value":"YQ=="}]`))
	f.Add([]byte("\x00\xff{"))
	f.Add([]byte(``))
	f.Add([]byte(`{"kind":"ConfigMap","data":{"a":"{\"auths\":{\"r\":{\"auth\":\"dTpw\"}}}","b":"x {\"password\":\"\u00e9\\ud83d\\ude00\"} y"}}`))
	f.Add([]byte(`{"msg":"{\"type\":\"service_account\",\"private_key\":\"k\",\"x\":\"\\u0026\\/\"}"}`))
	f.Add([]byte(`{"v":"[{\"a\":\"\\\"{\\\\\\\"b\\\\\\\":1}\\\"\"}]"}`))
}

func FuzzJSON(f *testing.F) {
	addSeeds(f)
	m := newMasker(f, Config{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary input: no panic, valid output, valid input accepted.
		out, st, err := m.JSON(nil, data, Target{})
		switch {
		case err == nil:
			if !json.Valid(out) {
				t.Fatalf("invalid output for %q: %q", data, out)
			}
			again, st2, err := m.JSON(nil, out, Target{})
			if err != nil || st2.Fields != 0 || !bytes.Equal(again, out) {
				t.Fatalf("masking twice changed %q: %v %+v -> %q", out, err, st2, again)
			}
		case !errors.Is(err, ErrMalformed):
			t.Fatalf("unexpected error %v", err)
		case json.Valid(data) && utf8.Valid(data) && !strings.Contains(err.Error(), "nesting") && !strings.Contains(err.Error(), "kind after"):
			t.Fatalf("valid JSON %q rejected: %v", data, err)
		}
		_ = st

		// A generated document with planted secrets.
		g := newGen(data)
		doc, target := g.document()
		out, _, err = m.JSON(nil, []byte(doc), target)
		if err != nil {
			if json.Valid([]byte(doc)) {
				t.Fatalf("generated document rejected: %v\n%s", err, doc)
			}
			return
		}
		require.True(t, json.Valid(out), "invalid output for %s", doc)
		g.requireNoPlanted(t, out, doc)
	})
}

// chunkReader returns its data in chunks whose sizes the fuzzer chooses.
type chunkReader struct {
	data []byte
	r    *rnd
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.r.intn(64))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func FuzzWatchStream(f *testing.F) {
	f.Add(fixture(f, "watch.jsonl"))
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Secret","data":{"k":"YQ=="}}}{"type":"DELETED"}`))
	f.Add([]byte("{\n\"type\":\"ADDED\",\n\"object\":{\"data\":{\"k\":\"}{\\\"\"}}}\n"))
	m := newMasker(f, Config{Limits: Limits{MaxEventBytes: 1 << 16}})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Arbitrary input: no panic; what comes out before an error is valid events.
		s := m.WatchStream(&chunkReader{data: data, r: &rnd{b: data}}, Target{Resource: "secrets"})
		out, _ := io.ReadAll(s)
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("invalid events %q from %q: %v", out, data, err)
			}
		}

		// A stream of generated events with planted secrets.
		g := newGen(data)
		var stream bytes.Buffer
		for i := 0; i < 3; i++ {
			ev := obj{{"type", "ADDED"}, {"object", g.secret(g.r.bool())}}
			stream.WriteString(g.encode(ev))
			if g.r.bool() {
				stream.WriteByte('\n')
			}
		}
		doc := stream.String()
		s = m.WatchStream(&chunkReader{data: []byte(doc), r: &rnd{b: data}}, Target{Resource: "secrets"})
		out, err := io.ReadAll(s)
		if err != nil && json.Valid([]byte("["+strings.ReplaceAll(strings.ReplaceAll(doc, "}\n{", "},{"), "}{", "},{")+"]")) {
			t.Fatalf("generated stream rejected: %v\n%s", err, doc)
		}
		g.requireNoPlanted(t, out, doc)
	})
}

func FuzzText(f *testing.F) {
	f.Add([]byte("password=hunter2 user=bob"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"))
	f.Add([]byte("Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."))
	f.Add([]byte("postgres://u:p@h/db?sslmode=disable&password=x"))
	f.Add([]byte("\xff\xfe-----BEGIN"))
	f.Add([]byte("{")) // a key block after a line that opens JSON
	f.Add([]byte("{\n  \"a\": \"{\\\"password\\\":\\\"x\\\"}\",\n  \"b\": [1, {\"c\": null}]\n}\nPuTTY-User-Key-File-3: x\nPrivate-MAC: 00\n"))
	// Command lines and settings whose finders read words and attributes by hand.
	f.Add([]byte("htpasswd -bnBC 10 \"\" 'p w' 2>&1 | x; docker run --entrypoint htpasswd i -Bbn u \\\n pw\nopenssl enc -k pw -passin 'pass:a b' -pass \\\"pass:c\\\""))
	f.Add([]byte("rclone --config c config create r s key k pass $(rclone obscure `x`) \"$(rclone obscure (y)\" <<<z 3>&-"))
	f.Add([]byte("echo -n 'pw' | docker login --password-stdin <<< x\n<add key=\"ApiKey\" value=\\\"Zk3qP9xW2vL8nR4t\\\"/><add value='x' key='pass'"))
	m := newMasker(f, Config{Limits: Limits{MaxLineBytes: 4 * lineOverlap}})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, _ := m.Text(nil, data)
		sout, err := io.ReadAll(m.TextStream(&chunkReader{data: data, r: &rnd{b: data}}))
		require.NoError(t, err)
		if !utf8.Valid(data) {
			return
		}
		_ = out
		_ = sout

		// Secrets planted on their own lines between fuzz text.
		g := newGen(data)
		aws := "AKIAQ3EGRJ7XW5LN2TBV"
		secrets := []string{
			"password=" + g.canary(),
			"DB_TOKEN: " + g.canary() + "Zk3qP9xW2vL8",
			aws,
			"-----BEGIN PRIVATE KEY-----\n" + g.canary() + "\n-----END PRIVATE KEY-----",
			"postgres://app:" + g.canary() + "@db:5432/app",
			`{"level":"info","payload":` + quote(`{"auths":{"r.example.com":{"auth":"`+g.canary()+`"}}}`) + `}`,
			"{\n  \"password\": \"" + g.canary() + "\"\n}",
		}
		g.canaries = append(g.canaries, aws)
		var b strings.Builder
		for _, s := range secrets {
			b.Write(data)
			b.WriteString("\n" + s + "\n")
		}
		text := []byte(b.String())
		out, _ = m.Text(nil, text)
		g.requireNoPlanted(t, out, string(text))
		sout, err = io.ReadAll(m.TextStream(&chunkReader{data: text, r: &rnd{b: data}}))
		require.NoError(t, err)
		g.requireNoPlanted(t, sout, string(text))
	})
}
