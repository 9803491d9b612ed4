package masking

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// oracleMasker returns a Masker of the configuration with the prefilter off: it masks every
// string as the engine did before the prefilter existed.
func oracleMasker(t testing.TB, cfg Config) *Masker {
	t.Helper()
	o := newMasker(t, cfg)
	o.eng.stop = nil
	return o
}

// escapeBody returns s as the body of a JSON string, each byte written in one of the ways
// JSON allows, chosen by r: itself where that is allowed, a short escape, or \u with upper- or
// lower-case hex digits. Multi-byte UTF-8 is kept whole.
func escapeBody(r *rand.Rand, s string, escapeRate int) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		short := map[byte]byte{'"': '"', '\\': '\\', '/': '/', '\b': 'b', '\f': 'f', '\n': 'n', '\r': 'r', '\t': 't'}[c]
		mustEscape := c < 0x20 || c == '"' || c == '\\'
		switch {
		case c >= 0x80:
			b = append(b, c)
		case !mustEscape && r.IntN(100) >= escapeRate:
			b = append(b, c)
		case short != 0 && r.IntN(2) == 0:
			b = append(b, '\\', short)
		case r.IntN(2) == 0:
			b = fmt.Appendf(b, `\u%04X`, c)
		default:
			b = fmt.Appendf(b, `\u%04x`, c)
		}
	}
	return b
}

// rawPieces are pieces of texts for the prefilter's tests: keywords, credentials, the bytes
// that stop it, and filler.
var rawPieces = []string{
	"password=hunter2-Qx7f", "PASSWORD: Zq8-hunter2-Wx", "token ", "Bearer eyQ0x9Zk2LmN4pQr8sTu", "key=Zk29fLq0Pz81mMvX",
	"AKIAQ3EGRJ7XW5LN2TBV", "ghp_Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6", "https://user:s3cr3t-pw@db.internal/app",
	"kind: \"Secret\"", "\"auth\": \"Ym90OmNhbmFyeQ==\"", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
	"abcdef.0123456789abcdef", "123456789012345|Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9", "123456789012345%7CZk29fLq0Pz81mMvXa7Qw3Rt5Yu9",
	"s.Zk29fLq0Pz81mMvXa7Qw3Rt5", "{\"password\":\"hunter2-Qx7f\"}", "redis://u:Zq8hunter2Qx7f@cache:6379", "[\"a\"]", "H4sIAAAAAAAA", "sk-proj-",
	"server:", "\n", "\t", "  ", "port: 8080", "level: info", "é", "日本", "\\", "/", "\"", "'", "x", "app", "1//0",
	"://", "%", "|", ".", "{", "[",
}

// rawText returns a random text of rawPieces.
func rawText(r *rand.Rand) string { return piecesText(r, rawPieces, 12) }

// piecesText returns a random text of 1 to most of pieces.
func piecesText(r *rand.Rand, pieces []string, most int) string {
	var b strings.Builder
	for range 1 + r.IntN(most) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// requirePrefilterSound checks the prefilter on the text of the JSON string body raw: when
// it says the detectors find nothing, they find nothing, and the text holds no nested document;
// when it has scanned the text, the detectors find what they find after their own scan.
func requirePrefilterSound(t *testing.T, m *Masker, w *walker, raw []byte) bool {
	t.Helper()
	text := unescape(nil, raw)
	none, scanned := m.eng.prefilter(text, w.trig)
	switch {
	case none:
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
		require.Empty(t, m.eng.find(w, text, w.trig, nil), "raw %q", raw)
		require.False(t, bytes.ContainsAny(text, "{["), "raw %q", raw)
	case scanned:
		require.False(t, bytes.ContainsAny(text, "{["), "raw %q", raw)
		got := slices.Clone(m.eng.findScanned(w, text, w.trig, nil))
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
		require.Equal(t, m.eng.find(w, text, w.trig, nil), got, "raw %q", raw)
	default:
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
	}
	return none
}

// TestPrefilterSound decodes random string bodies, full of keywords, credentials and escapes
// of every kind, and runs the detectors on each one the prefilter passes over or has scanned.
func TestPrefilterSound(t *testing.T) {
	m := newMasker(t, Config{})
	require.NotNil(t, m.eng.stop, "the built-in detectors let the prefilter work")
	w := newWalker(m)
	r := rand.New(rand.NewPCG(19, 6))
	skipped := 0
	for i := range 50000 {
		if requirePrefilterSound(t, m, w, escapeBody(r, rawText(r), []int{0, 5, 30}[i%3])) {
			skipped++
		}
	}
	require.Greater(t, skipped, 1000, "the prefilter passes over some texts: the test can fail")
}

func FuzzPrefilter(f *testing.F) {
	for _, s := range []string{`server:\n  port: 8080\n`, `p\u0061ssword=x`, `kind: \"Secret\"`, `a\/\/b`, `\u002e`} {
		f.Add([]byte(s))
	}
	m, err := New(Config{Key: testKey})
	require.NoError(f, err)
	w := newWalker(m)
	f.Fuzz(func(t *testing.T, b []byte) {
		// b as a string body, if it is one, and b's bytes escaped.
		if end, _, err := scanString(append(append([]byte{'"'}, b...), '"'), 0); err == nil && end == len(b)+2 {
			requirePrefilterSound(t, m, w, b)
		}
		r := rand.New(rand.NewPCG(uint64(len(b)), 7))
		requirePrefilterSound(t, m, w, escapeBody(r, string(b), 20))
	})
}

// configMapDoc returns a ConfigMap with the bodies as its values.
func configMapDoc(bodies ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"default"},"data":{`)
	for i, body := range bodies {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":"`, i)
		b.Write(body)
		b.WriteByte('"')
	}
	b.WriteString(`}}`)
	return b.Bytes()
}

// requireAsOracle masks doc with m and with the oracle: the outputs are the same, byte for
// byte, and so are the stats.
func requireAsOracle(t *testing.T, m, o *Masker, doc []byte) []byte {
	t.Helper()
	got, gotStats, gotErr := m.JSON(nil, doc, Target{Resource: "configmaps"})
	want, wantStats, wantErr := o.JSON(nil, doc, Target{Resource: "configmaps"})
	require.Equal(t, wantErr, gotErr, "doc %s", doc)
	require.Equal(t, string(want), string(got), "doc %s", doc)
	require.Equal(t, wantStats, gotStats, "doc %s", doc)
	return got
}

// TestPrefilterAsOracle masks random ConfigMaps whose values are written with random
// escapes, with the prefilter and without: the same output.
func TestPrefilterAsOracle(t *testing.T) {
	m, o := newMasker(t, Config{}), oracleMasker(t, Config{})
	r := rand.New(rand.NewPCG(19, 8))
	changed := 0
	for i := range 5000 {
		var bodies [][]byte
		for range 1 + r.IntN(4) {
			bodies = append(bodies, escapeBody(r, rawText(r), []int{0, 5, 30}[i%3]))
		}
		doc := configMapDoc(bodies...)
		if out := requireAsOracle(t, m, o, doc); !bytes.Equal(out, doc) {
			changed++
		}
	}
	require.Greater(t, changed, 1000, "secrets are masked: the test can fail")
}

func FuzzPrefilterAsOracle(f *testing.F) {
	f.Add([]byte(`server:\n  port: 8080\n`), []byte(`p\u0061ssword=hunter2-Qx7f`))
	f.Add([]byte(`kind: \"Secret\"\ndata:\n  a: b`), []byte(`https:\/\/u:pw-Qx7f@h\/x`))
	m, err := New(Config{Key: testKey})
	require.NoError(f, err)
	o, err := New(Config{Key: testKey})
	require.NoError(f, err)
	o.eng.stop = nil
	f.Fuzz(func(t *testing.T, a, b []byte) {
		doc := configMapDoc(a, b)
		got, _, gotErr := m.JSON(nil, doc, Target{Resource: "configmaps"})
		want, _, wantErr := o.JSON(nil, doc, Target{Resource: "configmaps"})
		require.Equal(t, wantErr, gotErr)
		require.Equal(t, string(want), string(got))
	})
}

// TestPrefilterAttacks hides credentials from the prefilter every way the string body
// allows: keywords written with \u escapes, short escapes inside keywords and separators,
// escaped slashes and quotes, mixed case, a credential at the very start and end of the
// string, after long filler, and across the places where the keyword scan cuts long texts.
// Each is masked, as without the prefilter.
func TestPrefilterAttacks(t *testing.T) {
	m, o := newMasker(t, Config{}), oracleMasker(t, Config{})
	long := strings.Repeat("lorem ipsum dolor sit amet ", 4000)
	cases := []struct {
		body   string
		secret string
	}{
		{`p\u0061ssword=hunter2-Qx7f`, "hunter2-Qx7f"},
		{`PA\u0053\u0053WORD: hunter2-Qx7f`, "hunter2-Qx7f"},
		{`pass\u0077ord=hunter2-Qx7f`, "hunter2-Qx7f"},
		{`password\u003dhunter2-Qx7f`, "hunter2-Qx7f"},
		{`password\u003Ahunter2-Qx7f`, "hunter2-Qx7f"},
		{`db_password=\u0068unter2-Qx7f`, "unter2-Qx7f"},
		{`\u0067hp_Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6`, "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6"},
		{`ghp\u005fZk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6`, "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6"},
		{`\u0041KIAQ3EGRJ7XW5LN2TBV`, "KIAQ3EGRJ7XW5LN2TBV"},
		{`https:\/\/user:s3cr3t-pw-Qx7f@db.internal\/app`, "s3cr3t-pw-Qx7f"},
		{`redis:\/\/u:Zq8hunter2Qx7f@cache:6379`, "Zq8hunter2Qx7f"},
		{`redis:\u002f/u:Zq8hunter2Qx7f@cache:6379`, "Zq8hunter2Qx7f"},
		{`https\u003a//user:s3cr3t-pw-Qx7f@db\u002einternal/app`, "s3cr3t-pw-Qx7f"},
		{`Authorization: B\u0065arer eyQ0x9Zk2LmN4pQr8sTuVw`, "eyQ0x9Zk2LmN4pQr8sTuVw"},
		{`\u002d----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAzK9x\n-----END RSA PRIVATE KEY-----`, "MIIEowIBAAKCAQEAzK9x"},
		{`-----BEGIN RSA PRIVATE\u0020KEY-----\nMIIEowIBAAKCAQEAzK9x\n-----END RSA PRIVATE KEY-----`, "MIIEowIBAAKCAQEAzK9x"},
		{`apiVersion: v1\nkind: \"Secret\"\nstringData:\n  api: Zk29fLq0Pz81mMvXa7Qw`, "Zk29fLq0Pz81mMvXa7Qw"},
		{`\u007b"password":"hunter2-Qx7f"}`, "hunter2-Qx7f"},
		{`\u005b{"password":"hunter2-Qx7f"}]`, "hunter2-Qx7f"},
		{`join abcdef\u002e0123456789abcdef`, "0123456789abcdef"},
		{`123456789012345\u007cZk29fLq0Pz81mMvXa7Qw3Rt5Yu9`, "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9"},
		{`123456789012345\u00257CZk29fLq0Pz81mMvXa7Qw3Rt5Yu9`, "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9"},
		{`token\thunter2Qx7fZk29fLq0Pz8`, "hunter2Qx7fZk29fLq0Pz8"},
		{`--password\u0020hunter2-Qx7f`, "hunter2-Qx7f"},
		{long + `password=hunter2-Qx7f`, "hunter2-Qx7f"},
		{`password=hunter2-Qx7f` + long, "hunter2-Qx7f"},
		{long + `p\u0061ssword=hunter2-Qx7f` + long, "hunter2-Qx7f"},
		{`\n\n\n\npassword=hunter2-Qx7f\n\n`, "hunter2-Qx7f"},
		{`é日本 password=hunter2-Qx7f`, "hunter2-Qx7f"},
	}
	for _, c := range cases {
		out := requireAsOracle(t, m, o, configMapDoc([]byte(c.body)))
		require.NotContains(t, string(out), c.secret, "body %.200s", c.body)
	}
	// A keyword across each place where the scan cuts texts of several lengths, and a
	// credential that starts or ends the string.
	for _, secret := range []string{`password=hunter2-Qx7f`, `p\u0061ssword=hunter2-Qx7f`, `ghp_Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6`} {
		for _, n := range []int{minPairScan, minQuadScan, 97, 130} {
			for at := 0; at+len(secret) <= max(n, len(secret)); at++ {
				body := strings.Repeat(`\n`, at/2) + strings.Repeat(" ", at%2) + secret + strings.Repeat(" ", max(0, n-at-len(secret)))
				out := requireAsOracle(t, m, o, configMapDoc([]byte(body)))
				require.NotContains(t, string(out), "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6")
				require.NotContains(t, string(out), "hunter2-Qx7f")
			}
		}
	}
}

// TestPrefilterOff checks when the prefilter cannot work: a custom detector without
// keywords might find anything anywhere.
func TestPrefilterOff(t *testing.T) {
	m := newMasker(t, Config{Detectors: []DetectorSpec{{Name: "order-id", Regex: `ORD[0-9]{6}`}}})
	require.Nil(t, m.eng.stop)
	out, _, err := m.JSON(nil, configMapDoc([]byte(`order ORD123456 shipped`)), Target{Resource: "configmaps"})
	require.NoError(t, err)
	require.NotContains(t, string(out), "ORD123456")
}

// TestDottedNeedsAny checks what findDotted declares to the prefilter: with its bytes taken out
// of texts where it finds something, it finds nothing.
func TestDottedNeedsAny(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 9))
	found := 0
	for range 20000 {
		text := []byte(rawText(r))
		if len(findDotted(text, nil)) > 0 {
			found++
		}
		stripped := bytes.Map(func(c rune) rune {
			if strings.ContainsRune(dottedNeedsAny, c) {
				return '-'
			}
			return c
		}, text)
		require.Empty(t, findDotted(stripped, nil), "text %q", stripped)
	}
	require.Greater(t, found, 100)
	// Every built-in detector without keywords declares what it needs: the prefilter is on.
	require.NotNil(t, newMasker(t, Config{}).eng.stop, "a built-in detector without keywords lacks needsAny")
}
