package masking

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// The tests of this file check the faster paths of text masking against the code they
// replaced or the slower path they stand in for: the offsets of edits mapped to raw strings a
// run at a time, the keyword scan in two halves, and the key classes remembered across
// assignments.

// rawOffsetsByte is rawOffsets as it was, a byte at a time: the reference.
func rawOffsetsByte(raw []byte, offs []int) {
	r, u, k := 0, 0, 0
	for k < len(offs) && r < len(raw) {
		rawLen, outLen := 1, 1
		if raw[r] == '\\' {
			rawLen, outLen = jsonlex.EscapeLen(raw, r)
		}
		for k < len(offs) && offs[k] < u+outLen {
			if offs[k] == u || k%2 == 0 {
				offs[k] = r
			} else {
				offs[k] = r + rawLen
			}
			k++
		}
		r += rawLen
		u += outLen
	}
	for ; k < len(offs); k++ {
		offs[k] = len(raw)
	}
}

// randomStringBody returns the body of a valid JSON string of n parts: plain runs, short
// escapes, \u escapes of one to four bytes of text, surrogate pairs and lone surrogates.
func randomStringBody(r *rand.Rand, n int) []byte {
	var b []byte
	for range n {
		switch r.IntN(8) {
		case 0:
			b = append(b, `\n`...)
		case 1:
			b = append(b, []string{`\"`, `\\`, `\/`, `\t`, `\b`, `\f`, `\r`}[r.IntN(7)]...)
		case 2:
			b = fmt.Appendf(b, `\u%04x`, []int{0x41, 0xe9, 0x20ac, 0x2028, 0x1, 0xfffd}[r.IntN(6)])
		case 3:
			b = append(b, `\ud83d\ude00`...) // a pair: four bytes of text
		case 4:
			b = append(b, []string{`\ud83d`, `\ude00`, `\ud83dx`, `\ud83d\u0041`}[r.IntN(4)]...)
		case 5:
			b = append(b, "é€😀"[:[]int{2, 5, 9}[r.IntN(3)]]...)
		default:
			for range r.IntN(20) {
				b = append(b, "abc=: password\t"[r.IntN(15)])
			}
		}
	}
	return b
}

// TestRawOffsetsAsByByte maps random ascending offsets into random strings with both
// rawOffsets and the byte-at-a-time reference: the results are the same, and every mapped
// pair covers the raw bytes of the text it names.
func TestRawOffsetsAsByByte(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 1))
	for range 20000 {
		raw := randomStringBody(r, r.IntN(12))
		text := unescape(nil, raw)
		n := 2 * r.IntN(5)
		offs := make([]int, n)
		for k := range offs {
			offs[k] = r.IntN(len(text) + 3)
		}
		slices.Sort(offs)
		want := slices.Clone(offs)
		rawOffsetsByte(raw, want)
		got := slices.Clone(offs)
		rawOffsets(raw, got)
		require.Equal(t, want, got, "raw %q offsets %v", raw, offs)
		for k := 0; k+1 < len(got); k += 2 {
			if offs[k+1] <= len(text) && runeBoundary(text, offs[k]) && runeBoundary(text, offs[k+1]) {
				// The raw bytes of a pair unescape to at least the text it names.
				require.Contains(t, string(unescape(nil, raw[got[k]:got[k+1]])), string(text[offs[k]:offs[k+1]]), "raw %q offsets %v", raw, offs)
			}
		}
	}
}

func runeBoundary(text []byte, i int) bool { return i >= len(text) || utf8.RuneStart(text[i]) }

func FuzzRawOffsets(f *testing.F) {
	f.Add([]byte(`a\nb\u00e9c\ud83d\ude00d`), uint64(7))
	f.Fuzz(func(t *testing.T, raw []byte, seed uint64) {
		if end, _, err := scanString(append(append([]byte{'"'}, raw...), '"'), 0); err != nil || end != len(raw)+2 {
			return // not the body of one JSON string
		}
		text := unescape(nil, raw)
		r := rand.New(rand.NewPCG(seed, 0))
		offs := make([]int, 2*r.IntN(6))
		for k := range offs {
			offs[k] = r.IntN(len(text) + 2)
		}
		slices.Sort(offs)
		want := slices.Clone(offs)
		rawOffsetsByte(raw, want)
		rawOffsets(raw, offs)
		require.Equal(t, want, offs)
	})
}

// allKeywords returns the keywords of the built-in detectors and formats.
func allKeywords() []string {
	var kws []string
	for _, d := range append(slices.Clone(builtinDetectors), formatDets...) {
		kws = append(kws, d.keywords...)
	}
	return kws
}

// keywordText returns a text of about n bytes of filler and keywords, in random case.
func keywordText(r *rand.Rand, kws []string, n int) []byte {
	var b []byte
	for len(b) < n {
		if r.IntN(3) == 0 {
			kw := kws[r.IntN(len(kws))]
			for i := 0; i < len(kw); i++ {
				c := kw[i]
				if isLower(c) && r.IntN(2) == 0 {
					c -= 'a' - 'A'
				}
				b = append(b, c)
			}
			continue
		}
		for range r.IntN(6) {
			b = append(b, " \n=:._-/aeiostxyz0123"[r.IntN(21)])
		}
	}
	return b
}

// TestScanPairAsScan scans random texts full of keywords, many across the middle, in two
// halves and in one: the same detectors are triggered.
func TestScanPairAsScan(t *testing.T) {
	m := newMasker(t, Config{Detectors: []DetectorSpec{{Name: "long-keyword", Regex: `zz[0-9]{8}`, Keywords: []string{"averyveryverylongkeyword"}}}})
	require.NotNil(t, m.eng.ac.next16, "the scan under test is scan16's")
	kws := append(allKeywords(), "averyveryverylongkeyword")
	r := rand.New(rand.NewPCG(19, 2))
	for i := range 20000 {
		text := keywordText(r, kws, r.IntN(200))
		if i%2 == 0 && len(text) >= minPairScan {
			// A keyword that ends at every position around the middle.
			kw := kws[r.IntN(len(kws))]
			end := len(text)/2 - maxKeywordLen + r.IntN(2*maxKeywordLen+1)
			if s := end - len(kw); s >= 0 && end <= len(text) {
				copy(text[s:end], kw)
			}
		}
		want, wantFound := triggeredBy(m.eng, text, (*automaton).scan16)
		got, gotFound := triggeredBy(m.eng, text, (*automaton).scanPair)
		require.Equal(t, want, got, "text %q", text)
		require.Equal(t, wantFound, gotFound, "text %q", text)
	}
}

func FuzzScanPair(f *testing.F) {
	f.Add([]byte("server: x\npassword=pw-1234-Qx7f\nuser=app and an AKIA key ghp_ sk-proj- token"))
	m, err := New(Config{Key: testKey})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, text []byte) {
		want, wantFound := triggeredBy(m.eng, text, (*automaton).scan16)
		got, gotFound := triggeredBy(m.eng, text, (*automaton).scanPair)
		require.Equal(t, want, got)
		require.Equal(t, wantFound, gotFound)
	})
}

// TestKeywordsFitScanPair checks the assumption of scanPair: no keyword in the automaton is
// longer than maxKeywordLen, custom ones included. The length of the longest is the depth of
// the deepest state, the shortest path to it from the root.
func TestKeywordsFitScanPair(t *testing.T) {
	m := newMasker(t, Config{Detectors: []DetectorSpec{{Name: "long-keyword", Regex: `zz[0-9]{8}`, Keywords: []string{"averyveryverylongkeyword"}}}})
	a := m.eng.ac
	stride := int(a.stride)
	depth := map[int]int{0: 0}
	queue := []int{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for c := range stride {
			if n := int(a.next16[s+c]); n >= 0 {
				if _, ok := depth[n]; !ok {
					depth[n] = depth[s] + 1
					queue = append(queue, n)
				}
			}
		}
	}
	deepest := 0
	for _, d := range depth {
		deepest = max(deepest, d)
	}
	require.Equal(t, maxKeywordLen, deepest, "keywords are cut to maxKeywordLen bytes, and some are as long")
}

// TestSecretAcrossTheMiddle slides a password assignment and a token through texts of
// several lengths, so that the keyword crosses the middle where scanPair cuts the text at
// every offset: the secret is masked wherever it is.
func TestSecretAcrossTheMiddle(t *testing.T) {
	m := newMasker(t, Config{})
	for _, secret := range []string{"password=Zq8-hunter2-Wx", "ghp_Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6", "Authorization: Bearer eyQ0x9Zk2LmN4pQr8sTu"} {
		for _, n := range []int{minPairScan, 40, 64, 101} {
			for at := 0; at+len(secret) <= max(n, len(secret)); at++ {
				text := []byte(strings.Repeat(" ", at) + secret + strings.Repeat(" ", max(0, n-at-len(secret))))
				out, _ := m.Text(nil, text)
				v := secret[strings.LastIndexAny(secret, "= ")+1:]
				require.NotContains(t, string(out), v, "text %q", text)
				doc := `{"kind":"ConfigMap","apiVersion":"v1","data":{"f":` + quote(string(text)) + `}}`
				out, _, err := m.JSON(nil, []byte(doc), Target{Resource: "configmaps"})
				require.NoError(t, err)
				require.NotContains(t, string(out), v, "doc %s", doc)
			}
		}
	}
}

// configText returns a configuration file of random assignments: keys that are secret,
// plain, or hash into the same set of a key cache as a secret one (pXssword), values plain,
// random or references.
func configText(r *rand.Rand) []byte {
	keys := []string{"password", "pXssword", "passwore", "url", "user", "pool.size", "api_key", "api_kex", "tokens", "tokenz",
		"DB_PASSWORD", "DB_PASSWORX", "client-secret", "client-secreu", "--password", "--pXssword", "public_key", "auth", "aXth",
		"checksum/secret", "signature", "sig", "pwd", "pw", "x"}
	vals := []string{"hunter2-Qx7f", "Zk29fLq0Pz81mMvX", "${DB_PASS}", "true", "app", "/home/app", "a b c", "\"quoted val\"", ""}
	seps := []string{"=", ": ", " = ", ":", " ", "=>", ":="}
	var b []byte
	for range 1 + r.IntN(8) {
		if r.IntN(3) == 0 {
			b = append(b, "  "...)
		}
		b = append(b, keys[r.IntN(len(keys))]...)
		b = append(b, seps[r.IntN(len(seps))]...)
		b = append(b, vals[r.IntN(len(vals))]...)
		b = append(b, "\n;&"[r.IntN(3)])
	}
	return b
}

// TestAssignmentsWithKeyCache finds assignments in random configuration texts with a walker,
// whose key cache carries classes from one text to the next, and without one: the same spans.
func TestAssignmentsWithKeyCache(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	r := rand.New(rand.NewPCG(19, 3))
	masked := 0
	for range 20000 {
		text := configText(r)
		want := findAssignments(nil, text, nil)
		got := findAssignments(w, text, nil)
		require.Equal(t, want, got, "text %q", text)
		masked += len(got)
	}
	require.Greater(t, masked, 1000, "secrets are among the assignments: the test can fail")
}

// TestKeyCacheRandom classifies random keys, many hashing alike, through one cache: every
// answer is classifyKey's.
func TestKeyCacheRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 4))
	words := []string{"password", "pXssword", "token", "tokex", "key", "kex", "name", "auth", "aXth", "sig", "data", "tls", "api", "db"}
	var kc keyCache
	secret := 0
	for range 50000 {
		var b bytes.Buffer
		for i := range 1 + r.IntN(3) {
			if i > 0 {
				b.WriteByte("_.-"[r.IntN(3)])
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		k := b.Bytes()
		want := classifyKey(k)
		require.Equal(t, want, kc.classify(k), "key %q", k)
		if want != keyPlain {
			secret++
		}
	}
	require.Greater(t, secret, 1000)
}

// triggeredBy returns the IDs scan sets for text, and whether it found any.
func triggeredBy(e *engine, text []byte, scan func(*automaton, []byte, []uint64) bool) ([]int, bool) {
	trig := make([]uint64, e.words)
	found := scan(e.ac, text, trig)
	var ids []int
	for id := 0; id < 64*len(trig); id++ {
		if trig[id>>6]&(1<<(id&63)) != 0 {
			ids = append(ids, id)
		}
	}
	return ids, found
}

// TestScanQuadAsScan scans random texts full of keywords, many across the places where
// scanQuad cuts them, in four parts and in one: the same detectors are triggered.
func TestScanQuadAsScan(t *testing.T) {
	m := newMasker(t, Config{Detectors: []DetectorSpec{{Name: "long-keyword", Regex: `zz[0-9]{8}`, Keywords: []string{"averyveryverylongkeyword"}}}})
	require.NotNil(t, m.eng.ac.next16, "the scan under test is scan16's")
	kws := append(allKeywords(), "averyveryverylongkeyword")
	r := rand.New(rand.NewPCG(19, 5))
	cut := 0
	for range 30000 {
		text := keywordText(r, kws, r.IntN(400))
		if len(text) >= minQuadScan {
			// A keyword that ends at every position around each cut, the end included.
			q := len(text) / 4
			for k := 1; k <= 4; k++ {
				kw := kws[r.IntN(len(kws))]
				at := k * q
				if k == 4 {
					at = len(text)
				}
				end := at - maxKeywordLen + r.IntN(2*maxKeywordLen+1)
				if s := end - len(kw); s >= 0 && end <= len(text) {
					copy(text[s:end], kw)
					cut++
				}
			}
		}
		want, wantFound := triggeredBy(m.eng, text, (*automaton).scan16)
		got, gotFound := triggeredBy(m.eng, text, (*automaton).scanQuad)
		require.Equal(t, want, got, "text %q", text)
		require.Equal(t, wantFound, gotFound, "text %q", text)
	}
	require.Greater(t, cut, 50000, "keywords were planted at the cuts")
}

func FuzzScanQuad(f *testing.F) {
	f.Add([]byte("server: x\npassword=pw-1234-Qx7f\nuser=app and an AKIA key ghp_ sk-proj- token, and some more text to pass the length at which the text is cut in four"))
	m, err := New(Config{Key: testKey})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, text []byte) {
		want, wantFound := triggeredBy(m.eng, text, (*automaton).scan16)
		got, gotFound := triggeredBy(m.eng, text, (*automaton).scanQuad)
		require.Equal(t, want, got)
		require.Equal(t, wantFound, gotFound)
	})
}

// TestSecretAcrossTheQuarters slides a password assignment, a token and an authorization
// header through texts of several lengths, so that the keyword crosses each place where
// scanQuad cuts the text, at every offset: the secret is masked wherever it is.
func TestSecretAcrossTheQuarters(t *testing.T) {
	m := newMasker(t, Config{})
	for _, secret := range []string{"password=Zq8-hunter2-Wx", "ghp_Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4Jh6", "Authorization: Bearer eyQ0x9Zk2LmN4pQr8sTu", "DB_PASSWORD: Zq8-hunter2-Wx"} {
		for _, n := range []int{minQuadScan - 1, minQuadScan, 67, 130, 203} {
			for at := 0; at+len(secret) <= max(n, len(secret)); at++ {
				text := []byte(strings.Repeat(" ", at) + secret + strings.Repeat(" ", max(0, n-at-len(secret))))
				out, _ := m.Text(nil, text)
				v := secret[strings.LastIndexAny(secret, "= ")+1:]
				require.NotContains(t, string(out), v, "text %q", text)
				doc := `{"kind":"ConfigMap","apiVersion":"v1","data":{"f":` + quote(string(text)) + `}}`
				out, _, err := m.JSON(nil, []byte(doc), Target{Resource: "configmaps"})
				require.NoError(t, err)
				require.NotContains(t, string(out), v, "doc %s", doc)
			}
		}
	}
}

// requireMayBeSecret checks mayBeSecret on k: it is true for every key classifyKey gives a
// class, and reports whether classifyKey did.
func requireMayBeSecret(t *testing.T, k []byte) bool {
	t.Helper()
	secret := classifyKey(k) != keyPlain
	if secret {
		require.True(t, mayBeSecret(k), "key %q", k)
	}
	return secret
}

// TestMayBeSecret builds keys from the words of the tables, in every case style, with plurals,
// prefixes, digits and separators after them, and from random bytes around them: mayBeSecret
// never turns one that classifyKey gives a class away.
func TestMayBeSecret(t *testing.T) {
	words := append([]string{"sig", "key", "apiKey", "API_KEY", "word", "sigs", "keys", "keyBase", "KEY_BASE", "base"}, passwordSuffixes...)
	words = append(append(words, passwordWords...), secretSuffixes...)
	styles := []func(string) string{
		func(s string) string { return s },
		strings.ToUpper,
		func(s string) string { return strings.ToUpper(s[:1]) + s[1:] },
		func(s string) string { return s + "s" },
		func(s string) string { return strings.ToUpper(s) + "S" },
	}
	prefixes := []string{"", "db_", "DB_", "x-", "my", "My", "api.", "--", "a1", "public_", "checksum/", "é"}
	suffixes := []string{"", "_1", "2", "-", ".", "__", " ", "=", "é", "s", "S"}
	secret := 0
	for _, w := range words {
		for _, st := range styles {
			for _, p := range prefixes {
				for _, sfx := range suffixes {
					if requireMayBeSecret(t, []byte(p+st(w)+sfx)) {
						secret++
					}
				}
			}
		}
	}
	require.Greater(t, secret, 1000)
	r := rand.New(rand.NewPCG(19, 10))
	const alphabet = "aAbBcCdDeEfFgGhHiIkKlLnNoOpPrRsStTuUwWyYzZ0129_-./: é"
	for range 200000 {
		var b []byte
		if r.IntN(2) == 0 {
			b = append(b, words[r.IntN(len(words))]...)
		}
		for range r.IntN(6) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		if r.IntN(2) == 0 {
			b = append(b, words[r.IntN(len(words))]...)
		}
		for range r.IntN(3) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		requireMayBeSecret(t, b)
	}
}

func FuzzMayBeSecret(f *testing.F) {
	for _, k := range []string{"password", "DB_PASSWORD", "apiKey", "tokens", "pws", "x_sig_2", "user"} {
		f.Add([]byte(k))
	}
	f.Fuzz(func(t *testing.T, k []byte) {
		requireMayBeSecret(t, k)
		var kc keyCache
		require.Equal(t, classifyKey(k), kc.classify(k))
	})
}

// startsLineForward is lineReader.startsLine as it was: every byte read forward once.
func (r *lineReader) startsLineForward(text []byte, sep int) bool {
	for ; r.pos < sep; r.pos++ {
		c := text[r.pos]
		if isSpace(c) {
			r.word = r.pos + 1
		}
		if c == '\n' {
			r.notIndent = -1
		} else if r.notIndent < 0 && !isIndent(c) {
			r.notIndent = r.pos
		}
	}
	return r.notIndent < 0 || r.notIndent >= r.word
}

// TestLineReaderAsForward asks one line reader, as findAssignments does, about ascending
// separators of random texts of lines, blanks, indentation and keys, and checks each answer and
// the state it keeps against the reader that read every byte forward, and the answer against
// the reading back from the separator.
func TestLineReaderAsForward(t *testing.T) {
	frags := []string{"\n", "\r\n", " ", "  ", "\t", "-", "- ", "\"", "'", "key", "password", "=", ":", "x y", "\r", "#"}
	r := rand.New(rand.NewPCG(19, 12))
	starts := 0
	for range 20000 {
		text := pieces(r, frags, r.IntN(30))
		got, want := lineReader{notIndent: -1}, lineReader{notIndent: -1}
		for sep := 0; sep <= len(text); sep += r.IntN(6) {
			a, b := got.startsLine(text, sep), want.startsLineForward(text, sep)
			require.Equal(t, b, a, "text %q sep %d", text, sep)
			require.Equal(t, want, got, "text %q sep %d", text, sep)
			require.Equal(t, startsLineBack(text, sep), a, "text %q sep %d", text, sep)
			if a {
				starts++
			}
		}
	}
	require.Greater(t, starts, 10000)
}

// requireUnescapeValid checks jsonlex.UnescapeValid on the string body raw, if scanString accepts it,
// against unescape, appending to a prefix.
func requireUnescapeValid(t *testing.T, raw []byte) bool {
	t.Helper()
	doc := append(append([]byte{'"'}, raw...), '"')
	if end, _, err := scanString(doc, 0); err != nil || end != len(doc) {
		return false
	}
	want := unescape([]byte("prefix"), raw)
	require.Equal(t, string(want), string(jsonlex.UnescapeValid([]byte("prefix"), raw)), "raw %q", raw)
	return true
}

// TestUnescapeValid decodes random valid string bodies, with every kind of escape (surrogate
// pairs, lone surrogates, escaped backslashes before letters) and multi-byte UTF-8: the text of
// unescape.
func TestUnescapeValid(t *testing.T) {
	frags := []string{`\n`, `\t`, `\r`, `\b`, `\f`, `\"`, `\\`, `\/`, `\\n`, `\u0041`, `\u00e9`, `\uD83D\uDE00`, `\uD83D`, `\uDE00`, `\uD83Dx`,
		`\u005c`, `\u005cn`, "é", "日本", "\U0001F600", "a", "password=x", " ", "\\\\\\\\"}
	r := rand.New(rand.NewPCG(19, 13))
	checked := 0
	for range 20000 {
		if requireUnescapeValid(t, pieces(r, frags, r.IntN(12))) {
			checked++
		}
	}
	require.Greater(t, checked, 15000)
}

func FuzzUnescapeValid(f *testing.F) {
	f.Add([]byte(`a\nb\u00e9\uD83D\uDE00\\\/"`))
	f.Add([]byte(`server:\n  port: 8080\n`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		requireUnescapeValid(t, raw)
	})
}
