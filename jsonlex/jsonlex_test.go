package jsonlex

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skipDocument validates a whole document: one value between white space.
func skipDocument(m Mode, src []byte) error {
	i := SkipSpace(src, 0)
	end, err := m.SkipValue(src, i, 0)
	if err != nil {
		return err
	}
	if SkipSpace(src, end) != len(src) {
		return syntaxError(end, "data after the value")
	}
	return nil
}

func nested(n int, open, closing string) string {
	return strings.Repeat(open, n) + strings.Repeat(closing, n)
}

func TestSkipValue(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		strict  error // ErrEOF, ErrSyntax or nil
		lenient error
	}{
		{"object", `{"a":[1,-2.5e+3,true,false,null,{"b":"c"}],"d":{}}`, nil, nil},
		{"white space", " \t\r\n[ 1 , { \"a\" : \"b\" } ] ", nil, nil},
		{"escapes", `"\" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"`, nil, nil},
		{"lone surrogates", `["\ud800","\udc00","\ud800\u0041"]`, nil, nil},
		{"utf-8", `"é😀"`, nil, nil},
		{"invalid utf-8", "\"a\xffb\"", ErrSyntax, nil},
		{"overlong utf-8", "\"\xc0\xaf\"", ErrSyntax, nil},
		{"truncated string", `"abc`, ErrEOF, ErrEOF},
		{"truncated escape", `"ab\`, ErrEOF, ErrEOF},
		{"truncated unicode escape", `"\u12`, ErrEOF, ErrEOF},
		{"truncated utf-8", "\"\xe2\x82", ErrEOF, ErrEOF},
		{"truncated object", `{"a":1`, ErrEOF, ErrEOF},
		{"truncated after comma", `[1,`, ErrEOF, ErrEOF},
		{"truncated key", `{"a"`, ErrEOF, ErrEOF},
		{"truncated literal", `tru`, ErrEOF, ErrEOF},
		{"truncated number", `-`, ErrEOF, ErrEOF},
		{"truncated fraction", `1.`, ErrEOF, ErrEOF},
		{"truncated exponent", `1e+`, ErrEOF, ErrEOF},
		{"empty", ``, ErrEOF, ErrEOF},
		{"bad escape", `"\q"`, ErrSyntax, ErrSyntax},
		{"bad unicode escape", `"\u12g4"`, ErrSyntax, ErrSyntax},
		{"control character", "\"a\x01\"", ErrSyntax, ErrSyntax},
		{"raw newline", "\"a\nb\"", ErrSyntax, ErrSyntax},
		{"leading zero", `01`, ErrSyntax, ErrSyntax},
		{"bad fraction", `1.e3`, ErrSyntax, ErrSyntax},
		{"bad literal", `nul1`, ErrSyntax, ErrSyntax},
		{"bad value", `}`, ErrSyntax, ErrSyntax},
		{"key not a string", `{1:2}`, ErrSyntax, ErrSyntax},
		{"missing colon", `{"a" 1}`, ErrSyntax, ErrSyntax},
		{"missing comma", `[1 2]`, ErrSyntax, ErrSyntax},
		{"trailing comma", `[1,]`, ErrSyntax, ErrSyntax},
		{"mismatched bracket", `[1}`, ErrSyntax, ErrSyntax},
		{"data after", `{} {}`, ErrSyntax, ErrSyntax},
		{"deepest allowed", nested(MaxDepth, "[", "]"), nil, nil},
		{"too deep", nested(MaxDepth+1, "[", "]"), ErrSyntax, ErrSyntax},
		{"too deep objects", nested(MaxDepth+1, `{"a":`, "}"), ErrSyntax, ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				mode Mode
				want error
			}{{Strict, tc.strict}, {Lenient, tc.lenient}} {
				err := skipDocument(c.mode, []byte(tc.src))
				if c.want == nil {
					assert.NoError(t, err, "mode %d", c.mode)
					continue
				}
				assert.ErrorIs(t, err, c.want, "mode %d", c.mode)
				if c.want == ErrSyntax {
					var se *SyntaxError
					require.ErrorAs(t, err, &se)
					assert.GreaterOrEqual(t, se.Offset, 0)
					assert.LessOrEqual(t, se.Offset, len(tc.src))
				}
			}
			if tc.lenient == nil {
				assert.True(t, json.Valid([]byte(tc.src)), "encoding/json agrees")
			}
		})
	}
}

func TestErrorsNameNoContent(t *testing.T) {
	const canary = "s3cr3t-canary"
	for _, src := range []string{
		`{"` + canary + `" 1}`, `["` + canary + `\q"]`, "[\"" + canary + "\x01\"]", `{"a":"` + canary + `"]`,
		"\"" + canary + "\xff\"", `[` + canary + `]`,
	} {
		err := skipDocument(Strict, []byte(src))
		require.ErrorIs(t, err, ErrSyntax, "%q", src)
		assert.NotContains(t, err.Error(), canary)
		_, _, err = new(Splitter).Scan([]byte(`[` + src))
		if err != nil {
			assert.NotContains(t, err.Error(), canary)
		}
	}
}

func TestScanString(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		end      int
		strict   bool // Strict: escaped
		lenient  bool // Lenient: must be unescaped
		wantText string
	}{
		{"plain", `"abc" x`, 5, false, false, "abc"},
		{"long plain", `"` + strings.Repeat("abcdefgh", 5) + `"`, 42, false, false, strings.Repeat("abcdefgh", 5)},
		{"escape", `"a\nb"`, 6, true, true, "a\nb"},
		{"surrogate pair", `"\ud83d\ude00"`, 14, true, true, "😀"},
		{"lone high surrogate", `"\ud800x"`, 9, true, true, "\uFFFDx"},
		{"lone low surrogate", `"\udc00"`, 8, true, true, "\uFFFD"},
		{"high then non-low", `"\ud800\u0041"`, 14, true, true, "\uFFFDA"},
		{"quote and slash", `"\"\/\\"`, 8, true, true, `"/\`},
		{"utf-8", `"é"`, 4, false, false, "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(tc.src)
			end, esc, err := Strict.ScanString(src, 0)
			require.NoError(t, err)
			assert.Equal(t, tc.end, end)
			assert.Equal(t, tc.strict, esc)
			end, esc, err = Lenient.ScanString(src, 0)
			require.NoError(t, err)
			assert.Equal(t, tc.end, end)
			assert.Equal(t, tc.lenient, esc)
			assert.Equal(t, tc.wantText, string(Unescape(nil, src[1:end-1])))
			var want string
			require.NoError(t, json.Unmarshal(src[:end], &want))
			assert.Equal(t, want, string(Unescape(nil, src[1:end-1])), "as encoding/json decodes it")
		})
	}
}

func TestLenientInvalidUTF8(t *testing.T) {
	src := []byte("\"a\xffb\\n\xc3\"")
	end, esc, err := Lenient.ScanString(src, 0)
	require.NoError(t, err)
	assert.True(t, esc, "invalid UTF-8 must be decoded")
	var want string
	require.NoError(t, json.Unmarshal(src, &want))
	assert.Equal(t, want, string(Unescape(nil, src[1:end-1])))

	_, _, err = Strict.ScanString(src, 0)
	var se *SyntaxError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 2, se.Offset)
}

func TestEscapeLen(t *testing.T) {
	for _, raw := range []string{`\n`, `\u00e9`, `\ud83d\ude00`, `\ud800`, `\udc00`, `\ud800\u0041`, `\u0041`} {
		rawLen, outLen := EscapeLen([]byte(raw), 0)
		first := raw[:rawLen]
		assert.Equal(t, len(Unescape(nil, []byte(first))), outLen, "%s", raw)
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		src     string
		closing byte
		j       int
		more    bool
		err     error
	}{
		{` , "b"`, '}', 3, true, nil},
		{` ]x`, ']', 2, false, nil},
		{`,`, ']', 1, false, ErrEOF},
		{``, ']', 0, false, ErrEOF},
		{` }`, ']', 1, false, ErrSyntax},
	}
	for _, tc := range tests {
		j, more, err := Next([]byte(tc.src), 0, tc.closing)
		if tc.err != nil {
			assert.ErrorIs(t, err, tc.err, "%q", tc.src)
			continue
		}
		require.NoError(t, err, "%q", tc.src)
		assert.Equal(t, tc.j, j, "%q", tc.src)
		assert.Equal(t, tc.more, more, "%q", tc.src)
	}
}

func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", `<a href="x">&</a>`, "tab\tnl\ncr\rdel\x7f\x00\x1f", "backspace\bform\ffeed", "bad\xff\xc3utf8", "\u2028\u2029", "é😀", `back\slash`} {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(AppendQuoted(nil, []byte(s))), "%q", s)
		assert.Equal(t, string(want), string(AppendQuoted(nil, s)), "%q as a string", s)

		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		assert.Equal(t, strings.TrimSuffix(buf.String(), "\n"), string(AppendQuotedText(nil, []byte(s))), "%q", s)
	}
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name string
		src  string
		end  int   // length of the first value; 0 when it does not end
		err  error // ErrSyntax or nil
	}{
		{"object", `{"a":"}]\"{"} {"b":1}`, 13, nil},
		{"array", `[[1],{"a":[]}],`, 14, nil},
		{"string", `"a\"b" x`, 6, nil},
		{"brackets in strings", `{"[":"{{{"}`, 11, nil},
		{"incomplete", `{"a":[1,2`, 0, nil},
		{"incomplete string", `"abc\`, 0, nil},
		{"mismatched", `{"a":[1}`, 0, ErrSyntax},
		{"control character", "{\"a\":\"\x01\"}", 0, ErrSyntax},
		{"bad escape", `{"a":"\x"}`, 0, ErrSyntax},
		{"not a container", `1`, 0, ErrSyntax},
		{"too deep", nested(MaxDepth+1, "[", "]"), 0, ErrSyntax},
		{"deepest allowed", nested(MaxDepth, "[", "]"), 2 * MaxDepth, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, piece := range []int{1, 3, 7, len(tc.src)} {
				end, err := splitPieces(&Splitter{}, []byte(tc.src), piece)
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err, "pieces of %d", piece)
					continue
				}
				require.NoError(t, err, "pieces of %d", piece)
				assert.Equal(t, tc.end, end, "pieces of %d", piece)
			}
		})
	}
}

// splitPieces feeds src to s in pieces of n bytes and returns where the first value ends, or 0.
func splitPieces(s *Splitter, src []byte, n int) (int, error) {
	for off := 0; off < len(src); off += n {
		k, done, err := s.Scan(src[off:min(off+n, len(src))])
		if err != nil {
			return 0, err
		}
		if done {
			return off + k, nil
		}
	}
	return 0, nil
}

func TestSplitterReuse(t *testing.T) {
	var s Splitter
	_, _, err := s.Scan([]byte(`{"a":]`))
	require.Error(t, err)
	assert.False(t, s.Started(), "an error resets the splitter")
	n, done, err := s.Scan([]byte(`["x"]{}`))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 5, n)
	n, done, err = s.Scan([]byte(`{}`))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 2, n)
}

// FuzzLexer checks the lexer against encoding/json and never panics: a document is valid in
// Lenient mode exactly when json.Valid says so, and in Strict mode when it is also UTF-8;
// valid strings decode as encoding/json decodes them; the Splitter finds the end SkipValue finds.
func FuzzLexer(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"\u00e9\ud800"]}`, `"\ud83d\ude00"`, "\"\xff\"", `[{}]`, `[1,]`, `"\u12"`, `tru`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		valid := json.Valid(data)
		lerr := skipDocument(Lenient, data)
		serr := skipDocument(Strict, data)
		if (lerr == nil) != valid {
			t.Fatalf("Lenient: %v, json.Valid: %v", lerr, valid)
		}
		if (serr == nil) != (valid && utf8.Valid(data)) {
			t.Fatalf("Strict: %v, json.Valid: %v", serr, valid)
		}
		for _, err := range []error{lerr, serr} {
			if err != nil && !errors.Is(err, ErrSyntax) && err != ErrEOF {
				t.Fatalf("unexpected error %v", err)
			}
		}
		i := SkipSpace(data, 0)
		if i < len(data) && data[i] == '"' {
			if end, esc, err := Lenient.ScanString(data, i); err == nil {
				var want string
				require.NoError(t, json.Unmarshal(data[i:end], &want))
				got := string(data[i+1 : end-1])
				if esc {
					got = string(Unescape(nil, data[i+1:end-1]))
				}
				require.Equal(t, want, got)
			}
		}
		if valid && i < len(data) && (data[i] == '{' || data[i] == '[' || data[i] == '"') {
			end, _ := Lenient.SkipValue(data, i, 0)
			got, err := splitPieces(&Splitter{}, data[i:], 5)
			require.NoError(t, err)
			require.Equal(t, end-i, got)
		}
		want, err := json.Marshal(string(data))
		require.NoError(t, err)
		require.Equal(t, string(want), string(AppendQuoted(nil, data)))
	})
}
