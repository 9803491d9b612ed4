package masking

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The tests of this file check the finders rewritten to read their text in linear time
// against the code they replaced, kept here as it was: texts an attacker controls (a
// ConfigMap value, a log) must not make masking take time quadratic in their length, and the
// rewritten finders must find exactly what the old ones did.

// The finders as they were.

func startsLineBack(text []byte, sep int) bool {
	i := sep
	for i > 0 && text[i-1] != '\n' && !isSpace(text[i-1]) {
		i--
	}
	for i > 0 && text[i-1] != '\n' {
		if c := text[i-1]; c != ' ' && c != '\t' && c != '-' && c != '"' && c != '\'' {
			return false
		}
		i--
	}
	return true
}

// valueAfterByByte is valueAfter as it was before valueReader: it reads the value from its
// start, byte by byte.
func valueAfterByByte(text []byte, i int, flag, oneWord bool) (int, int) {
	if !flag {
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
	}
	if i >= len(text) {
		return i, i
	}
	if q := text[i]; isQuote(q) {
		s := i + 1
		for j := s; j < len(text) && j-s < maxValueLen; j++ {
			switch text[j] {
			case '\\':
				j++
			case q:
				return s, j
			case '\n':
				return s, j
			}
		}
		return s, min(len(text), s+maxValueLen)
	}
	if s, e, ok := escapedValueBack(text, i); ok {
		return s, e
	}
	if flag && (text[i] == '-' || isSpace(text[i])) {
		return i, i
	}
	s := i
	j := i
	words := 1
	for j < len(text) && j-s < maxValueLen {
		c := text[j]
		if valueEnds[c] {
			break
		}
		if (c == ' ' || c == '\t') && (j == s || (text[j-1] != ' ' && text[j-1] != '\t')) {
			if words++; oneWord || words > maxValueWords || j-s > maxWordsLen || nextIsAssignment(text, j) {
				break
			}
		}
		j++
	}
	if j < len(text) && isQuote(text[j]) {
		for k := 0; k < 7 && j > s && text[j-1] == '\\'; k++ {
			j--
		}
	}
	for j > s && (text[j-1] == ' ' || text[j-1] == '\t' || text[j-1] == ',') {
		j--
	}
	return s, j
}

// escapedValueBack is escapedQuote and escapedValue as unescaping reads them: the value at
// text[i] is quoted with a quote held depth times in strings (1, 3 or 7 backslashes before
// it, or \u0022; 2 as 3, 4 to 6 as 7), and each quote after is unescaped depth+1 times,
// counting the backslashes before it back from it: the value ends at the first that is not
// still escaped.
func escapedValueBack(text []byte, i int) (int, int, bool) {
	b := 0
	for i+b < len(text) && text[i+b] == '\\' {
		b++
	}
	var q byte
	depth, s := 0, 0
	switch {
	case i+b < len(text) && isQuote(text[i+b]) && 1 <= b && b <= 7:
		q, depth, s = text[i+b], map[int]int{1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 3, 7: 3}[b], i+b+1
	case b == 1 && strings.HasPrefix(string(text[i:]), `\u0022`):
		q, depth, s = '"', 1, i+6
	default:
		return 0, 0, false
	}
	for j := s; j < len(text) && j-s < maxValueLen; j++ {
		back := 0
		for j-back > s && text[j-back-1] == '\\' {
			back++
		}
		if text[j] == '\n' {
			return s, j, true
		}
		if depth == 1 && q == '"' && back%4 == 1 && strings.HasPrefix(string(text[j:]), "u0022") {
			return s, j - 1, true
		}
		if text[j] != q {
			continue
		}
		escaped := true
		for n, k := 0, back; n <= depth; n++ {
			if k%2 == 0 {
				escaped = false
				break
			}
			k = (k - 1) / 2
		}
		if !escaped {
			return s, j - back%(1<<depth), true
		}
	}
	return s, min(len(text), s+maxValueLen), true
}

// firstWord returns v up to its first blank, or its first byte when that is one; v is not
// empty.
func firstWord(v []byte) []byte {
	for i, c := range v {
		if c == ' ' || c == '\t' {
			if i == 0 {
				return v[:1]
			}
			return v[:i]
		}
	}
	return v
}

// findAssignmentsBack is findAssignments as it was before it read forward: each key from its
// separator back to the start of its line, each value from its start.
func findAssignmentsBack(text []byte, spans []span) []span {
	for i := 0; i < len(text); i++ {
		var vs int // where the value may start
		flag := false
		switch text[i] {
		case '=':
			if i+1 < len(text) && text[i+1] == '=' {
				i++
				continue
			}
			vs = i + 1
			if vs < len(text) && text[vs] == '>' {
				vs++
			}
		case ':':
			if i+1 < len(text) && (text[i+1] == ':' || text[i+1] == '/') {
				i++
				continue
			}
			vs = i + 1
			if vs < len(text) && text[vs] == '=' {
				vs++
			}
		case ' ', '\t':
			flag = true
			vs = i + 1
		default:
			continue
		}
		key, ok := keyBefore(text, i, flag)
		if !ok {
			continue
		}
		c := classifyKey(key)
		if c == keyPlain {
			continue
		}
		v1, v2 := valueAfterByByte(text, vs, flag, flag || !startsLineBack(text, i))
		if text[keyEnd(text, i, flag)] == '\\' && strings.TrimLeft(string(text[vs:v1]), " \t") == "" {
			if k := strings.Index(string(text[v1:v2]), `\u0022`); k >= 0 {
				v2 = v1 + len(strings.TrimRight(string(text[v1:v1+k]), " \t,"))
			}
		}
		if v1 == v2 || hasPrefixFold(text[v1:], "invalid value: ") {
			// An API server field error; findFieldErrors handles those.
			continue
		}
		if w := firstWord(text[v1:v2]); w[len(w)-1] == ':' && !(v1 > vs && (isQuote(text[v1-1]) || strings.HasSuffix(string(text[vs:v1]), `\u0022`))) {
			// A nested key (YAML: "token:\n  path: x", "token: expirationSeconds: 3600"), not
			// a quoted value.
			continue
		}
		// Keep the scheme of an authorization value: Authorization: Bearer <masked>.
		for _, scheme := range []string{"bearer ", "basic ", "token "} {
			if hasPrefixFold(text[v1:v2], scheme) {
				v1 += len(scheme)
				break
			}
		}
		if id := keyMasks(c, key, text[v1:v2]); id >= 0 {
			spans = append(spans, span{v1, v2, id})
			i = v2 - 1
		}
	}
	return spans
}

func findAppTokensPerBar(text []byte, spans []span) []span {
	for off := 0; ; {
		i := bytes.IndexByte(text[off:], '|')
		j := bytes.Index(text[off:], []byte("%7C"))
		if i < 0 && j < 0 {
			return spans
		}
		p, sep := off+i, 1
		if i < 0 || (j >= 0 && j < i) {
			p, sep = off+j, 3
		}
		off = p + sep
		s := p
		for s > 0 && p-s <= 16 && isDigit(text[s-1]) {
			s--
		}
		if n := p - s; n < 15 || n > 16 || (s > 0 && isAlnum(text[s-1])) {
			continue
		}
		e := runOf(text, p+sep, base64URL)
		secret := text[p+sep : e]
		if n := len(secret); n < 27 || n > 40 || !endsToken(text, e) || !lettersAndDigits(secret) || entropy(secret) < 3.5 {
			continue
		}
		spans = append(spans, span{s, e, idFacebook})
		off = e
	}
}

func findSecretManifestsPerKind(text []byte, spans []span) []span {
	id := formatIDSecretManifest
	for _, m := range secretKind.FindAllSubmatchIndex(text, -1) {
		indent := m[3] - m[2]
		// The YAML document the kind is in.
		docStart := bytes.LastIndex(text[:m[0]], []byte("\n---"))
		docStart++ // 0 when there is none
		docEnd := bytes.Index(text[m[1]:], []byte("\n---"))
		if docEnd < 0 {
			docEnd = len(text)
		} else {
			docEnd += m[1]
		}
		doc := text[docStart:docEnd]
		in := false // inside data or stringData
		block := -1 // indentation of the entry whose block scalar the lines belong to
		for ls := 0; ls < len(doc); {
			le := bytes.IndexByte(doc[ls:], '\n')
			if le < 0 {
				le = len(doc)
			} else {
				le += ls
			}
			line := bytes.TrimRight(doc[ls:le], " \t\r")
			ind := len(line) - len(bytes.TrimLeft(line, " "))
			body := line[ind:]
			switch {
			case len(body) == 0 || body[0] == '#':
			case block >= 0 && ind > block:
				spans = append(spans, span{docStart + ls + ind, docStart + ls + len(line), id})
			case ind == indent && (bytes.Equal(body, []byte("data:")) || bytes.Equal(body, []byte("stringData:"))):
				in, block = true, -1
			case ind <= indent:
				in, block = false, -1
			case in:
				block = -1
				k := bytes.Index(body, []byte(": "))
				if k < 0 {
					break
				}
				v := bytes.TrimSpace(body[k+2:])
				if len(v) > 0 && (v[0] == '|' || v[0] == '>') {
					block = ind
					break
				}
				vs := ls + ind + k + 2
				for vs < ls+len(line) && doc[vs] == ' ' {
					vs++
				}
				if vs < ls+len(line) {
					spans = append(spans, span{docStart + vs, docStart + ls + len(line), id})
				}
			}
			ls = le + 1
		}
	}
	return spans
}

// sameSpans requires the spans of two finders to be the same once merged as the engine does.
func sameSpans(t *testing.T, want, got []span, text []byte) {
	t.Helper()
	require.Equal(t, mergeSpans(slices.Clone(want)), mergeSpans(slices.Clone(got)), "text %q", text)
}

// pieces builds random texts from fragments chosen to exercise a finder.
func pieces(r *rand.Rand, frags []string, n int) []byte {
	var b []byte
	for range n {
		b = append(b, frags[r.IntN(len(frags))]...)
	}
	return b
}

// TestLinearFindersAsBefore runs the rewritten finders and the old ones over random texts made
// of the fragments they look for: the same spans.
func TestLinearFindersAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 5))
	assignFrags := []string{"password", "token", "pXssword", "url", "--password", "= ", "=", ": ", ":", " ", "  ", "\t", "\n", "\r\n", "- ", "\"", "'",
		`\"`, `\\\"`, `\\`, `\'`, `\\\\\\\"`, `\u0022`, "u0022",
		"hunter2-Qx7f", "Zk29fLq0Pz81mMvX", "a b", "x", "${A}", "api_key", "# ", "bearer ", "invalid value: ", "==", "::", "://"}
	appFrags := []string{"|", "%7C", "%7c", "123456789012345", "1234567890123456", "x", " ", "Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4", "-", ".", "%", "7C"}
	manifestFrags := []string{"kind: Secret\n", "  kind: Secret\n", "\tkind: Secret\n", "kind: 'Secret'\n", "kind: ConfigMap\n", "data:\n", "  data:\n",
		"stringData:\n", "  stringData:\n", "  password: hunter2\n", "    password: hunter2\n", "  tls.key: |\n", "    line of a block\n", "      deeper line\n",
		"\n", "# comment\n", "  # comment\n", "---\n", "   odd line\n", " one: space\n", "     five: spaces\n", "\n---\n", "metadata:\n", "  name: x\n", "  key:value\n", "  k: \n", "  k: >\n", "x\r\n", "  - item: v\n"}
	found := map[string]int{}
	for range 4000 {
		text := pieces(r, assignFrags, r.IntN(40))
		want := findAssignmentsBack(text, nil)
		require.Equal(t, want, findAssignments(nil, text, nil), "text %q", text)
		found["assignments"] += len(want)
		text = pieces(r, appFrags, r.IntN(20))
		want = findAppTokensPerBar(text, nil)
		require.Equal(t, want, findAppTokens(text, nil), "text %q", text)
		found["app tokens"] += len(want)
		text = pieces(r, manifestFrags, r.IntN(40))
		want = findSecretManifestsPerKind(text, nil)
		sameSpans(t, want, findSecretManifests(text, nil), text)
		found["manifests"] += len(want)
		for sep := range len(text) + 1 {
			var lr lineReader
			lr.notIndent = -1
			require.Equal(t, startsLineBack(text, sep), lr.startsLine(text, sep), "text %q sep %d", text, sep)
		}
	}
	for name, n := range found {
		require.Greater(t, n, 20, "the random texts hold %s: the test can fail", name)
	}
	require.Len(t, found, 3)
}

// TestAssignmentsOfLongValuesAsBefore compares the assignment finders over random texts whose
// values are long: longer than shortValue, whose entropy valueReader takes from the counts of
// the last value, and than maxValueLen, where a value is cut.
func TestAssignmentsOfLongValuesAsBefore(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 7))
	random := func(n int, alphabet string) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	frags := []string{"token=", "password: ", "secret:", "api_key=", "url=", "aaaa:", ":", "=", " ", "\n", ";", "\"",
		"bearer ", "a b ", random(300, b64), random(300, b64), random(1500, b64), random(5000, b64),
		strings.Repeat("a", 400), strings.Repeat("ab:", 200), random(600, "ab"), random(700, b64+"=:"), random(2000, b64+" "),
		// Quoted values that are not masked (prose, low entropy), with an assignment inside
		// whose value starts after and ends before theirs.
		`api_key: "the token=` + random(700, b64) + " " + strings.Repeat("a", 300) + `" x`,
		`api_key: "the token=` + strings.Repeat("ab", 300) + " " + random(300, b64) + `" x`,
		`api_key: "the ` + random(250, b64) + "token=" + strings.Repeat("ab", 150) + `" x`,
		`api_key: "` + strings.Repeat("a", 600) + "token=" + random(300, b64) + `" x`}
	long := 0
	for range 400 {
		text := pieces(r, frags, 1+r.IntN(30))
		want := findAssignmentsBack(text, nil)
		require.Equal(t, want, findAssignments(nil, text, nil), "text %q", text)
		for _, s := range want {
			if s.end-s.start > shortValue {
				long++
			}
		}
	}
	require.Greater(t, long, 50, "the random texts hold long values that are masked: the test can fail")
}

// TestLinearFindersFindSecrets checks that the test above compares finders that find
// something: secrets among the random texts are found by both.
func TestLinearFindersFindSecrets(t *testing.T) {
	text := []byte("kind: Secret\ndata:\n  password: hunter2\n---\n  kind: Secret\n  stringData:\n    tls.key: |\n      secret line\n")
	require.Len(t, findSecretManifests(text, nil), 2)
	sameSpans(t, findSecretManifestsPerKind(text, nil), findSecretManifests(text, nil), text)
	text = []byte("app 1234567890123456|Zk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4 and 123456789012345%7CZk29fLq0Pz81mMvXa7Qw3Rt5Yu9Io2Lk4")
	require.Len(t, findAppTokens(text, nil), 2)
	text = []byte("  password: long pass phrase\nx password=hunter2 more")
	require.Equal(t, findAssignmentsBack(text, nil), findAssignments(nil, text, nil))
	require.Len(t, findAssignments(nil, text, nil), 2)
}

// adversarialTexts are texts of about n bytes that made the old finders quadratic: a line of
// many secret-sounding assignments none of which is masked, many bars, many kind lines.
func adversarialTexts(n int) map[string][]byte {
	return map[string][]byte{
		"assignments":  bytes.Repeat([]byte("token=aaaa:"), n/11),
		"bars":         bytes.Repeat([]byte("|"), n),
		"percent7C":    bytes.Repeat([]byte("%7C"), n/3),
		"kind-lines":   bytes.Repeat([]byte("kind: Secret\n"), n/13),
		"kind-data":    bytes.Repeat([]byte("kind: Secret\ndata:\n  a: b\n"), n/26),
		"kind-indents": kindIndents(n),
		// Commands whose arguments the finders of cmdline.go read, and the expression of
		// password-stdin-echo, on one line.
		"htpasswd-b":    bytes.Repeat([]byte("htpasswd -b "), n/12),
		"openssl-k":     bytes.Repeat([]byte("openssl -k -pass "), n/17),
		"rclone-nested": bytes.Repeat([]byte("rclone config create r s pass $("), n/32),
		"echo-pipes":    append(bytes.Repeat([]byte("echo a | "), n/9), " --password-stdin"...),
		"echo-stdin":    bytes.Repeat([]byte("echo 'a | x --password-stdin <<< "), n/34),
		"echo-quotes":   append(bytes.Repeat([]byte(`echo "a" 'b' \"c\" `), n/20), " | x --password-stdin"...),
		"here-strings":  append(bytes.Repeat([]byte("<<< a "), n/6), " --password-stdin"...),
		// Here-strings whose words run on ($( without its ')'), in one command and in many:
		// the finder read each such word again from every <<< in it (3 s for 100 kB).
		"here-string-substs":   append([]byte("d --password-stdin "), bytes.Repeat([]byte("<<<$("), n/5)...),
		"here-string-commands": bytes.Repeat([]byte("d --password-stdin <<<$(;"), n/25),
		"add-attributes":       bytes.Repeat([]byte(`<add key="password" value='a" `), n/30),
		// Objects never closed, with objects that close in them (textEdits tries each once),
		// and escaped quotes of several depths whose values are not masked.
		"unclosed-objects": append([]byte(`{"a":[`), bytes.Repeat([]byte(`{"k":{"v":1}},`), n/14)...),
		"unclosed-nesting": bytes.Repeat([]byte(`{"a":`), n/5),
		"escaped-quotes":   bytes.Repeat([]byte(`\"token\":\\\"a\\\" \"x\":\"token:\u0022a `), n/36),
		// Commands as YAML sequences and JSON arrays (argv.go): a command whose words every
		// args key of the mapping was read with, and an object whose every args key looked
		// for its command again.
		"yaml-args": append(append([]byte("command:\n- mysql\n- -px\n"), bytes.Repeat([]byte("- "+strings.Repeat("w", 200)+"\n"), n/404)...),
			bytes.Repeat([]byte("args: [a, b]\n"), n/26)...),
		"yaml-dash-p": append([]byte("command:\n"), bytes.Repeat([]byte("- -p\n"), n/5)...),
		"json-args":   append(append([]byte(`{"kind":"X","spec":{`), bytes.Repeat([]byte(`"args":["a"],`), n/13)...), `"z":1}}`...),
		"json-args-command": append(append([]byte(`{"kind":"X","spec":{"command":["mysql",`+strings.Repeat(`"-pw",`, 255)+`"x"],`),
			bytes.Repeat([]byte(`"args":["-h","db"],`), n/19)...), `"z":1}}`...),
	}
}

// kindIndents returns Secret manifests whose kind and data lines are at many indentations,
// followed by lines under all of them.
func kindIndents(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n/2; i++ {
		b.WriteString(strings.Repeat(" ", i) + "kind: Secret\n" + strings.Repeat(" ", i) + "data:\n")
	}
	for b.Len() < n {
		b.WriteString(strings.Repeat(" ", 2000) + "k: v\n\n")
	}
	return b.Bytes()
}

// TestAdversarialTextsAsBefore runs the finders over the adversarial texts at a size the old
// ones still read in reasonable time (the old manifest finder took minutes for 20 kB of
// kind-data): the same spans as they find.
func TestAdversarialTextsAsBefore(t *testing.T) {
	for name, text := range adversarialTexts(3000) {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, findAssignmentsBack(text, nil), findAssignments(nil, text, nil))
			require.Equal(t, findAppTokensPerBar(text, nil), findAppTokens(text, nil))
			sameSpans(t, findSecretManifestsPerKind(text, nil), findSecretManifests(text, nil), text[:100])
		})
	}
}

// BenchmarkAdversarialText masks the adversarial texts at 100 kB and 1 MB: ns/op grows ten
// times, not a hundred (make bench shows it; no test asserts time).
func BenchmarkAdversarialText(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{100 << 10, 1 << 20} {
		texts := adversarialTexts(n)
		names := make([]string, 0, len(texts))
		for name := range texts {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			text := texts[name]
			b.Run(name+"/size="+map[int]string{100 << 10: "100kB", 1 << 20: "1MB"}[n], func(b *testing.B) {
				b.SetBytes(int64(len(text)))
				dst := make([]byte, 0, 2*len(text))
				for b.Loop() {
					dst, _ = m.Text(dst[:0], text)
				}
			})
		}
	}
}

func FuzzLinearFinders(f *testing.F) {
	f.Add([]byte("kind: Secret\ndata:\n  password: hunter2\n  tls.key: |\n    x\n---\nx password=y|123456789012345%7C"))
	f.Add([]byte(`{\"password\":\"a\\\"b\",\u0022token\u0022:null,\u0022pw\u0022:\u0022x\u0022, \'secret\': \\\\\"y`))
	f.Fuzz(func(t *testing.T, text []byte) {
		require.Equal(t, findAssignmentsBack(text, nil), findAssignments(nil, text, nil))
		require.Equal(t, findAppTokensPerBar(text, nil), findAppTokens(text, nil))
		sameSpans(t, findSecretManifestsPerKind(text, nil), findSecretManifests(text, nil), text)
	})
}

// insertionSorted is the insertion sort mergeSpans used: the reference for the stable sort.
func insertionSorted(spans []span) []span {
	spans = slices.Clone(spans)
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].start < spans[j-1].start; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	return spans
}

// TestMergeSpansAsInsertionSort merges random spans, several of each start, after sorting
// them stably and with the insertion sort mergeSpans used: the same spans, named alike.
func TestMergeSpansAsInsertionSort(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 6))
	for range 20000 {
		spans := make([]span, r.IntN(30))
		for i := range spans {
			s := r.IntN(40)
			spans[i] = span{s, s + 1 + r.IntN(8), []int{idPasswordAssignment, idKeywordEntropy, idJWT, idAWSAccessKeyID, idFirstFormat}[r.IntN(5)]}
		}
		want := mergeSpans(slices.Clone(spans)) // sorted again by the stable sort: the same order
		require.Equal(t, mergeSpansSorted(insertionSorted(spans)), want, "spans %v", spans)
	}
}

// mergeSpansSorted is the merging half of mergeSpans, for spans already sorted.
func mergeSpansSorted(spans []span) []span {
	if len(spans) < 2 {
		return spans
	}
	n := 0
	for _, s := range spans[1:] {
		if s.start < spans[n].end {
			if s.end > spans[n].end {
				spans[n].end = s.end
			}
			if isKeywordRule(spans[n].id) {
				spans[n].id = s.id
			}
			continue
		}
		n++
		spans[n] = s
	}
	return spans[:n+1]
}
