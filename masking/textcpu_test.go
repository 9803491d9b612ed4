package masking

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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
