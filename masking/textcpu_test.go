package masking

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of this file check the shortcuts that make the text detectors of a ConfigMap list
// cheaper against what they stand in for.

// syntaxSamples are strings of each fixed syntax, of every shape syntaxOf accepts.
var syntaxSamples = map[fixedSyntax][]string{
	synDecimal: {"0", "250000", "12345678901234567890"},
	synUUID:    {"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10"},
	synTime:    {"2026-03-14T09:26:53Z", "2026-03-14T09:26:53.1Z", "2026-03-14T09:26:53.123456789Z"},
}

// TestSyntaxByteFollowsSyntaxOf puts every byte in every place of strings of each syntax:
// whenever the string keeps its syntax, syntaxByte says the syntax can hold the byte.
func TestSyntaxByteFollowsSyntaxOf(t *testing.T) {
	for syn, samples := range syntaxSamples {
		for _, s := range samples {
			require.Equal(t, syn, syntaxOf([]byte(s)), s)
			for i := range len(s) {
				for c := range 256 {
					b := []byte(s)
					b[i] = byte(c)
					if syntaxOf(b) == syn {
						require.True(t, syntaxByte(syn, byte(c)), "%q holds %q", b, byte(c))
					}
				}
			}
		}
	}
	for c := range 256 {
		assert.True(t, syntaxByte(synNone, byte(c)))
	}
}

// dotDetector finds every dot: a detector without keywords that needs a byte a time's
// fraction holds.
func dotDetector(id int) *detector {
	return &detector{id: id, needsAny: ".", find: func(text []byte, spans []span) []span {
		for i, c := range text {
			if c == '.' {
				spans = append(spans, span{i, i + 1, id})
			}
		}
		return spans
	}}
}

// TestNoFindingsNeededBytes checks noFindings on strings of the fixed syntaxes for engines
// whose detectors without keywords need bytes: it passes over those without the bytes, and
// leaves those with them to the detectors, and an engine with a detector that does not say
// what it needs runs it on every string.
func TestNoFindingsNeededBytes(t *testing.T) {
	dots := newEngine([]*detector{dotDetector(0)}, 1, make([]bool, 1))
	require.NotNil(t, dots.stop)
	everything := newEngine([]*detector{{id: 0, find: func(text []byte, spans []span) []span {
		return append(spans, span{0, len(text), 0})
	}}}, 1, make([]bool, 1))
	require.Nil(t, everything.stop, "a detector without needsAny turns the shortcut off")
	m := newMasker(t, Config{})
	for _, tt := range []struct {
		text string
		dots bool // dotDetector finds something
	}{
		{"250000", false},
		{"7d0f3a52-6b1e-4c8e-9a41-2f5e8c7d9b10", false},
		{"2026-03-14T09:26:53Z", false},
		{"2026-03-14T09:26:53.5Z", true},
		{"2026-03-14T09:26:53.123456789Z", true},
	} {
		w := newWalker(m)
		w.trig = make([]uint64, 1)
		text := []byte(tt.text)
		assert.Equal(t, !tt.dots, dots.noFindings(w, text), tt.text)
		assert.Equal(t, !tt.dots, len(dots.find(w, text, w.trig, nil)) == 0, tt.text)
		assert.False(t, everything.noFindings(w, text), tt.text)
	}
}

// TestNoFindingsAsFind compares noFindings with find on random strings of the fixed syntaxes,
// times with fractions included: whenever noFindings passes over one, find finds nothing.
func TestNoFindingsAsFind(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	r := rand.New(rand.NewPCG(5, 31))
	decided := 0
	for range 20000 {
		var text []byte
		switch r.IntN(3) {
		case 0:
			text = fmt.Appendf(nil, "%d", r.Uint64())
		case 1:
			text = randomUID(r)
		default:
			text = fmt.Appendf(nil, "20%02d-%02d-%02dT%02d:%02d:%02d", r.IntN(100), r.IntN(13), r.IntN(32), r.IntN(24), r.IntN(60), r.IntN(60))
			if r.IntN(2) == 0 {
				text = fmt.Appendf(text, ".%d", r.IntN(1e9))
			}
			text = append(text, 'Z')
		}
		require.NotEqual(t, synNone, syntaxOf(text), "%q", text)
		if m.eng.noFindings(w, text) {
			decided++
			require.Empty(t, m.eng.find(w, text, w.trig, nil), "%q", text)
		}
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
	}
	require.Greater(t, decided, 10000)
}

// TestKeyEndBytes checks the last-byte test of keyEndMayBeSecret against the read back it
// saves, on every key end of one and two bytes, alone and before the runs of '.', '-', '_'
// and digits it reads back over: wherever the read back could answer true, so does the test.
func TestKeyEndBytes(t *testing.T) {
	for _, suffix := range []string{"", "_", "1", "-2", ".", "_v2."} {
		for a := range 256 {
			for b := range 256 {
				for _, prefix := range []string{"", "x", "my-"} {
					text := append(append([]byte(prefix), byte(a), byte(b)), suffix...)
					if keyEndReadBack(text, len(text)) {
						require.True(t, keyEndMayBeSecret(text, len(text)), "%q", text)
					}
				}
			}
		}
	}
	require.False(t, keyEndMayBeSecret(nil, 0))
	require.False(t, keyEndMayBeSecret([]byte("=x"), 0))
	for _, k := range []string{"credential", "db_password", "apiKey", "x-auth-token2", "x-auth-token.", "signatures", "COOKIE", "pw", "AUTH1", "auth."} {
		require.True(t, keyEndMayBeSecret([]byte(k+"="), len(k)), k)
	}
	for c := range 256 {
		require.Equal(t, isKeyByte(byte(c)), keyBytes[c], "%q", byte(c))
		require.Equal(t, endsValue(byte(c)), valueEnds[c], "%q", byte(c))
	}
}

// TestObviouslyNotSecretFirstWord checks the first word obviouslyNotSecret compares with the
// words of prose against the word up to the first blank, on values whose first blank is a
// space or a tab, at or around the longest word it compares, or missing.
func TestObviouslyNotSecretFirstWord(t *testing.T) {
	firstWord := func(v []byte) []byte {
		if i := bytes.IndexAny(v, " \t"); i >= 0 {
			return v[:i]
		}
		return v
	}
	r := rand.New(rand.NewPCG(3, 11))
	pieces := []string{"the", "THE", "a", "must", "required", "incorrect", "0123456789", "x", " ", "\t", "  ", "s3cr3t", "Qx7f"}
	for range 20000 {
		v := []byte(piecesText(r, pieces, 5))
		n := blankIn(v[:min(len(v), 11)])
		want := firstWord(v)
		require.Equal(t, len(want) <= 10, n <= 10, "%q", v)
		if n <= 10 {
			require.Equal(t, string(want), string(v[:n]), "%q", v)
		}
	}
	for v, want := range map[string]bool{
		"the\tQx7f-s3cr3t-value": true, "must be set": true, "Required\tvalue": true, "incorrect": true,
		"thePassw0rd": false, "0123456789 the": false, "s3cr3t the": false, "x\tthe": false, "\tthe": true,
	} {
		assert.Equal(t, want, obviouslyNotSecret([]byte(v)), "%q", v)
	}
}

// naiveNextSeparator is nextSeparator one byte at a time.
func naiveNextSeparator(text []byte, i int, seps string) int {
	for ; i < len(text); i++ {
		if strings.IndexByte(seps, text[i]) >= 0 {
			return i
		}
	}
	return len(text)
}

// sepSets are the sets of separators of findAssignments and their bytes.
var sepSets = map[string]*sepSet{"=: \t": &flagSeps, "=:": &keyValueSeps}

// separatorBytes are the separators and the bytes a word-at-a-time search could take for
// them: their neighbours, the same with the high bit set, and the extremes.
var separatorBytes = []byte{'=', ':', ' ', '\t', '<', '>', ';', '9', '!', '\x1f', '\x08', '\n', 0xbd, 0xba, 0xa0, 0x89, 0, 1, 0x7f, 0x80, 0xff, 'a', 'Z'}

// TestNextSeparator compares nextSeparator with a search byte by byte from every index of
// random texts of separatorBytes, of lengths around the word size, and of texts with one
// separator at each place.
func TestNextSeparator(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 2))
	for range 20000 {
		text := make([]byte, r.IntN(40))
		for i := range text {
			text[i] = separatorBytes[r.IntN(len(separatorBytes))]
			if r.IntN(3) > 0 {
				text[i] = 'a' + byte(r.IntN(26)) // runs without separators
			}
		}
		for i := 0; i <= len(text); i++ {
			for seps, s := range sepSets {
				require.Equal(t, naiveNextSeparator(text, i, seps), nextSeparator(text, i, s), "%q from %d", text, i)
			}
		}
	}
	for seps, s := range sepSets {
		for c := range 256 {
			require.Equal(t, strings.IndexByte(seps, byte(c)) >= 0, s.table[c], "%q", byte(c))
		}
		for n := range 33 {
			for at := range n {
				for _, c := range []byte(seps) {
					text := bytes.Repeat([]byte{0xbd}, n)
					text[at] = c
					require.Equal(t, at, nextSeparator(text, 0, s), "%q", text)
					require.Equal(t, n, nextSeparator(text, at+1, s), "%q", text)
				}
			}
		}
	}
}

func FuzzNextSeparator(f *testing.F) {
	f.Add([]byte("url=jdbc:postgresql://db:5432/app\npassword=x"), 0)
	f.Fuzz(func(t *testing.T, text []byte, i int) {
		if i < 0 || i > len(text) {
			return
		}
		for seps, s := range sepSets {
			require.Equal(t, naiveNextSeparator(text, i, seps), nextSeparator(text, i, s))
		}
	})
}

// TestAssignmentsAtEveryAlignment finds assignments after prefixes of every length up to two
// words, so that their separators fall at every place of the words nextSeparator reads, with
// the pairs of separators findAssignments passes over (==, ::, :/) before them, and at the
// end of the text.
func TestAssignmentsAtEveryAlignment(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	for _, tt := range []struct{ format, value string }{
		{"%spassword=Qx7fZk29fLq0", "Qx7fZk29fLq0"},
		{"%s password: Qx7fZk29fLq0", "Qx7fZk29fLq0"},
		{"%s==x password=Qx7fZk29fLq0", "Qx7fZk29fLq0"},
		{"%s::x\tpassword:=Qx7fZk29fLq0", "Qx7fZk29fLq0"},
		{"%s://h --password Qx7fZk29fLq0", "Qx7fZk29fLq0"},
		{"%s api_key = \"8f14e45fceea167a5a36dedd4bea2543\"", "8f14e45fceea167a5a36dedd4bea2543"},
		{"%s\tAPI_TOKEN=8f14e45fceea167a5a36dedd4bea2543 mode=x", "8f14e45fceea167a5a36dedd4bea2543"},
	} {
		for n := range 18 {
			for _, pad := range []string{strings.Repeat("v", n), strings.Repeat("=", n), strings.Repeat(" ", n), strings.Repeat(":", n)} {
				text := fmt.Sprintf(tt.format, pad)
				at := strings.LastIndex(text, tt.value)
				spans := findAssignments(w, []byte(text), nil)
				require.Len(t, spans, 1, "%q", text)
				require.Equal(t, at, spans[0].start, "%q", text)
				require.Equal(t, at+len(tt.value), spans[0].end, "%q", text)
			}
		}
	}
	for _, text := range []string{"password==Qx7fZk29fLq0", "password::Qx7fZk29fLq0", "password:/Qx7fZk29fLq0", "password", "password=", "x password"} {
		require.Empty(t, findAssignments(w, []byte(text), nil), "%q", text)
	}
}

// assignmentPieces are pieces of texts for findAssignments: keys of each class, flags, dashes,
// separators, blanks, values of prose and of credentials, and line breaks.
var assignmentPieces = []string{
	"password", "api_key", "Token", "secret", "name", "url", "-", "--", "--password", "-p", "--api-key", "x-token",
	"=", ":", " = ", ": ", " ", "\t", "  ", "\n", "\n  - ", "\"", "'", "==", "::", "://",
	"/password", "+password", "\u2014password", "\u2013", "\u00a0", "\u2212",
	"Qx7fZk29fLq0", "8f14e45fceea167a5a36dedd4bea2543", "hunter2", "the", "true", "$(VAR)", "bearer ", "a", "1",
}

// TestAssignmentsWithoutDashes compares findAssignments, which passes over blanks in a text
// without a dash, with the search that looks at blanks everywhere, on random texts of
// assignmentPieces, with dashes and without.
func TestAssignmentsWithoutDashes(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	r := rand.New(rand.NewPCG(29, 4))
	found, flags, noDash := 0, 0, 0
	for range 30000 {
		text := []byte(piecesText(r, assignmentPieces, 10))
		want := slices.Clone(findAssignmentsAt(w, text, nil, &flagSeps))
		got := findAssignments(w, text, nil)
		require.Equal(t, want, got, "%q", text)
		switch {
		case len(got) == 0:
		case !bytes.Contains(text, []byte("-")):
			noDash++
		case bytes.Contains(text, []byte(" -")):
			flags++
		}
		found += len(got)
	}
	require.Greater(t, found, 1000, "the texts hold assignments")
	require.Greater(t, flags, 200, "some are flags")
	require.Greater(t, noDash, 100, "some are in texts without a dash")
	for text, want := range map[string]string{
		"--password Qx7fZk29fLq0":         "Qx7fZk29fLq0",
		"run -p Qx7fZk29fLq0":             "",
		"run --api-key\tQx7fZk29fLq0 now": "Qx7fZk29fLq0",
		"password Qx7fZk29fLq0":           "",
		"password: Qx7fZk29fLq0":          "Qx7fZk29fLq0",
	} {
		spans := findAssignments(w, []byte(text), nil)
		if want == "" {
			require.Empty(t, spans, "%q", text)
			continue
		}
		require.Len(t, spans, 1, "%q", text)
		require.Equal(t, want, text[spans[0].start:spans[0].end], "%q", text)
	}
}

func FuzzAssignmentsWithoutDashes(f *testing.F) {
	f.Add([]byte("use the secret store, token path /var/run/tokens password: Qx7fZk29fLq0"))
	f.Add([]byte("run --api-key\tQx7fZk29fLq0 now"))
	m, err := New(Config{Key: benchKey})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, text []byte) {
		w := newWalker(m)
		want := slices.Clone(findAssignmentsAt(w, text, nil, &flagSeps))
		require.Equal(t, want, findAssignments(w, text, nil))
	})
}
