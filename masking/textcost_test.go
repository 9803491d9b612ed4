package masking

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The tests of this file check the shortcuts that keep text detection cheap against what they
// stand in for: the quick tests in front of the bearer-token and basic-auth expressions
// against the expressions, the key-end test in front of keyBefore against the key cache, and
// the one-pass prefilter against the detectors run without it.

// wordRunPieces are pieces of texts for the expressions behind wordRun.mayHold: their words in
// every case and with the runes Unicode folds onto k and s, blanks, runs of their alphabets of
// lengths around the minimum, and bytes outside them.
var wordRunPieces = []string{
	"bearer", "BEARER", "Bearer", "token", "TOKEN", "to\u212aen", "TO\u212aEN", "basic", "BASIC", "ba\u017fic", "BA\u017fIC",
	"bea", "tok", "bas", " ", "\t", "  ", " \t", "\n", "=", "==", ":", ",", "x", "_", "-", ".", "~", "+", "/",
	"\u212a", "\u017f", "é", "\xe2\x84", "\xff", "Zk29fLq0", "Qx7f", "8f14e45fceea167a5a36dedd4bea2543", "dXNlcjpwYXNz",
	"YWxpY2U6czNjcjN0", "0123456789abcdef", "path", "/var/run/tokens", "ab", "abc",
}

// TestWordRunMayHoldAsExpression masks random texts of wordRunPieces with the bearer-token and
// basic-auth detectors with and without their quick tests: the same spans, and the tests turn
// some texts away.
func TestWordRunMayHoldAsExpression(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 5))
	for _, id := range []int{idBearer, idBasicAuth} {
		d := builtinDetectors[slices.IndexFunc(builtinDetectors, func(d *detector) bool { return d.id == id })]
		require.NotNil(t, d.mayMatch)
		plain := *d
		plain.mayMatch = nil
		rejected, matched := 0, 0
		for range 200000 {
			text := []byte(piecesText(r, wordRunPieces, 10))
			if d.re.Match(text) {
				matched++
				require.True(t, d.mayMatch(text), "%s: %q", coreNames[id], text)
			}
			if !d.mayMatch(text) {
				rejected++
			}
			require.Equal(t, plain.run(nil, text, nil), d.run(nil, text, nil), "%s: %q", coreNames[id], text)
		}
		require.Greater(t, matched, 1000, "%s: the texts match: the test can fail", coreNames[id])
		require.Greater(t, rejected, 1000, "%s: the quick test turns texts away", coreNames[id])
	}
}

func FuzzWordRunMayHold(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543", "to\u212aen \u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f\u017f", "ba\u017fic dXNlcjpwYXNz"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, d := range builtinDetectors {
			if d.mayMatch != nil && d.re.Match(text) {
				require.True(t, d.mayMatch(text), "%s: %q", coreNames[d.id], text)
			}
		}
	})
}

// keyPieces are pieces of keys and what surrounds them: secret and plain words, the bytes
// that are key bytes but not letters or digits, digits, quotes, blanks and separators.
var keyPieces = []string{
	"password", "PASSWORD", "Token", "tokens", "apiKey", "api_key", "secret", "auth", "sig", "pw", "pass", "cookie", "creds",
	"name", "url", "data", "checksum", "public", "x", "Ab", "s", "_", "-", ".", "--", "0", "42", "\"", "'", "`", " ", "\t", "=", ":", "\n",
	strings.Repeat("a", 120), strings.Repeat("9", 130),
}

// TestKeyEndMayBeSecret asks keyEndMayBeSecret about every separator of random texts of
// keyPieces: when it answers false, the key keyBefore finds there, if any, is classified
// keyPlain.
func TestKeyEndMayBeSecret(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 6))
	skipped, secret := 0, 0
	for range 20000 {
		text := []byte(piecesText(r, keyPieces, 12))
		for sep, c := range text {
			if !assignmentSeps[c] {
				continue
			}
			flag := c == ' ' || c == '\t'
			key, ok := keyBefore(text, sep, flag)
			if !ok {
				continue
			}
			class := classifyKey(key)
			if class != keyPlain {
				secret++
			}
			if !keyEndMayBeSecret(text, keyEnd(text, sep, flag)) {
				skipped++
				require.Equal(t, keyPlain, class, "text %q separator %d key %q", text, sep, key)
			}
		}
	}
	require.Greater(t, secret, 1000, "secret keys are among the random ones: the test can fail")
	require.Greater(t, skipped, 1000, "the test skips keys")
}

func FuzzKeyEndMayBeSecret(f *testing.F) {
	f.Add([]byte("--db_password.2 = x"), 3)
	f.Fuzz(func(t *testing.T, text []byte, sep int) {
		if sep < 0 || sep >= len(text) {
			return
		}
		for _, flag := range []bool{false, true} {
			if key, ok := keyBefore(text, sep, flag); ok && !keyEndMayBeSecret(text, keyEnd(text, sep, flag)) {
				require.Equal(t, keyPlain, classifyKey(key), "key %q", key)
			}
		}
	})
}

// TestPrefilterScansNeededBytes checks that a text with keywords and a byte a detector
// without keywords needs, but no nested document, is scanned once by the prefilter: its
// detectors run from the prefilter's bits, and find what find finds.
func TestPrefilterScansNeededBytes(t *testing.T) {
	m := newMasker(t, Config{})
	w := newWalker(m)
	for _, s := range []string{
		"url=jdbc:postgresql://db-3.internal:5432/app\nuser=app\npassword=pw-0001ee7f-Qx7f\n",
		"bootstrap abcdef.0123456789abcdef",
		"the token is abcdef.0123456789abcdef",
		"a.b|c%d",
		"x abcdef.0123456789abcdef",                          // shorter than minPairScan
		"a long line of text with no keyword but a dot: x.y", // as long as minPairScan or longer
	} {
		text := []byte(s)
		none, scanned := m.eng.prefilter(text, w.trig)
		require.True(t, scanned, "%q", text)
		require.False(t, none)
		got := slices.Clone(m.eng.findScanned(w, text, w.trig, nil))
		require.Equal(t, m.eng.find(w, text, w.trig, nil), got, "%q", text)
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
	}
	none, scanned := m.eng.prefilter([]byte("a.b"), w.trig)
	require.True(t, none, "too short for the detectors, and no nested document")
	require.False(t, scanned)
	for _, s := range []string{"{\"password\":\"x\"}", "[token x.y]", "x.y{", "a long line of text with a dot. and a [ bracket"} {
		none, scanned := m.eng.prefilter([]byte(s), w.trig)
		require.False(t, none, "%q", s)
		require.False(t, scanned, "%q", s)
	}
}

// randomUID returns a string of the uid syntax, some with keywords that fit it in places.
func randomUID(r *rand.Rand) []byte {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, uuidLen)
	for i := range uuidLen {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			b = append(b, '-')
			continue
		}
		b = append(b, hex[r.IntN(len(hex))])
	}
	if r.IntN(2) == 0 {
		kw := []string{"acca", "acdb", "eaac", "00d", "4b1d", "eaaa", "a3-"}[r.IntN(7)]
		at := r.IntN(uuidLen - len(kw) + 1)
		if syntaxOf(append(append(slices.Clone(b[:at]), kw...), b[at+len(kw):]...)) == synUUID {
			copy(b[at:], kw)
		}
	}
	return b
}

// TestNoFindingsOnUIDs decides on random uids, whose syntax keywords of credential formats fit
// in: without one the detectors find nothing there and noFindings says so; with one it leaves
// the uid to find.
func TestNoFindingsOnUIDs(t *testing.T) {
	m := newMasker(t, Config{})
	require.False(t, m.eng.clean[synUUID], "keywords fit uids: the test checks the keyword scan")
	w := newWalker(m)
	require.True(t, m.eng.noFindings(w, []byte("00000000-6b1e-4c8e-9a41-2f5e8c7d9b10")))
	require.False(t, m.eng.noFindings(w, []byte("4b1d0000-6b1e-4c8e-9a41-2f5e8c7d9b10")))
	r := rand.New(rand.NewPCG(23, 7))
	decided, left := 0, 0
	for range 20000 {
		text := randomUID(r)
		require.Equal(t, synUUID, syntaxOf(text), "%q", text)
		if m.eng.noFindings(w, text) {
			decided++
			require.Empty(t, m.eng.find(w, text, w.trig, nil), "%q", text)
		} else {
			left++
		}
		for _, x := range w.trig {
			require.Zero(t, x, "trig is left zero")
		}
	}
	require.Greater(t, decided, 1000)
	require.Greater(t, left, 1000, "uids with keywords are left to find")
}

// TestNoFindingsOnUIDsAsOracle masks a list whose uids hold keywords of credential formats,
// next to credentials that hold uids, with the prefilter and without it: the same output, and
// the credentials masked.
func TestNoFindingsOnUIDsAsOracle(t *testing.T) {
	m, o := newMasker(t, Config{}), oracleMasker(t, Config{})
	o.eng.bySyntax = false
	r := rand.New(rand.NewPCG(23, 8))
	var b strings.Builder
	b.WriteString(`{"kind":"ConfigMapList","apiVersion":"v1","items":[`)
	for i := range 2000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"metadata":{"name":"x","uid":"` + string(randomUID(r)) + `"},"data":{"k":"` + string(randomUID(r)) + `","c":"password=` + string(randomUID(r)) + `"}}`)
	}
	b.WriteString("]}")
	want, _, err := o.JSON(nil, []byte(b.String()), Target{Resource: "configmaps"})
	require.NoError(t, err)
	got, _, err := m.JSON(nil, []byte(b.String()), Target{Resource: "configmaps"})
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
	require.Equal(t, 2000, strings.Count(string(got), PlaceholderPrefix), "every password masked")
}

// isUUIDByByte is isUUID as it was, a byte at a time: the reference.
func isUUIDByByte(s []byte) bool {
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isDigit(c) && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// TestIsUUIDAsByByte checks isUUID against the byte-at-a-time reference on random strings of
// uid length from an alphabet around the uid syntax's: the same answers, some true.
func TestIsUUIDAsByByte(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 9))
	uids := 0
	for range 100000 {
		s := randomUID(r)
		for range r.IntN(3) {
			s[r.IntN(len(s))] = "0af-gAF/:` \xff"[r.IntN(12)]
		}
		want := isUUIDByByte(s)
		require.Equal(t, want, isUUID(s), "%q", s)
		if want {
			uids++
		}
	}
	require.Greater(t, uids, 10000)
}
