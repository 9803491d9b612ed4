package masking

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommandWords reads the arguments of a command (after its name) as a shell splits them:
// the values of its words, and the rest of the text after its end.
func TestCommandWords(t *testing.T) {
	tests := []struct {
		in    string
		words []string
		rest  string
	}{
		{in: " -b  f\tu pw", words: []string{"-b", "f", "u", "pw"}},
		{in: " 'a b' \"c \\\" d\" e'f'\"g\" \\\"h i\\\" j\\ k", words: []string{"a b", `c \" d`, `e'f'"g"`, "h i", `j\ k`}},
		{in: " a \\\n  b \\\r\n c\nd", words: []string{"a", "b", "c"}, rest: "\nd"},
		{in: " a; b", words: []string{"a"}, rest: "; b"},
		{in: " a|b", words: []string{"a"}, rest: "|b"},
		{in: " a && b", words: []string{"a"}, rest: "&& b"},
		{in: " a) b", words: []string{"a"}, rest: ") b"},
		{in: " a #b c", words: []string{"a"}, rest: "#b c"},
		{in: " a a#b", words: []string{"a", "a#b"}},
		{in: " a 2>/dev/null b >out <in c 2>&1 d &>/dev/null e <<<'f g' h 10 i", words: []string{"a", "b", "c", "d", "e", "h", "10", "i"}},
		// Quotes inside a substitution inside quotes are not nested: the word is read whole,
		// its value with its quotes.
		{in: " $(dirname $0)/x \"$(cat \"$f\")\" `cat f` y", words: []string{"$(dirname $0)/x", `"$(cat "$f")"`, "`cat f`", "y"}},
		{in: " a 'b\nc", words: []string{"a"}, rest: "'b\nc"},
		{in: ` a "b`, words: []string{"a"}, rest: `"b`},
		{in: ` a\" b`, words: []string{"a"}, rest: `\" b`},
	}
	for _, tt := range tests {
		text := []byte(tt.in)
		r := newWordReader(text, 0)
		var words []string
		for w, ok := r.next(); ok; w, ok = r.next() {
			words = append(words, string(w.value(text)))
		}
		assert.Equal(t, tt.words, words, "%q", tt.in)
		assert.Equal(t, tt.rest, string(text[r.pos:]), "%q", tt.in)
	}
}

// TestIsCommandStart: a command's name starts a word, after a path or the '=' of a flag too,
// but not inside a name or a file name.
func TestIsCommandStart(t *testing.T) {
	for in, want := range map[string]bool{
		"htpasswd": true, " htpasswd": true, "/usr/bin/htpasswd": true, "$(htpasswd": true, "`htpasswd": true,
		"--entrypoint=htpasswd": true, "\"htpasswd": true, "a;htpasswd": true, "a|htpasswd": true, "a&htpasswd": true,
		".htpasswd": false, "nginx-htpasswd": false, "myhtpasswd": false, "users_htpasswd": false, "1htpasswd": false,
	} {
		assert.Equal(t, want, isCommandStart([]byte(in), len(in)-len("htpasswd")), in)
	}
}

// FuzzCommandFinders runs the finders that read words and attributes by hand over arbitrary
// text: they end, and their spans lie in the text (a command read again in a substitution of
// another may give a span twice; the engine merges them).
func FuzzCommandFinders(f *testing.F) {
	f.Add([]byte("htpasswd -bnBC 10 \"\" 'p w' 2>&1 | x; docker run --entrypoint htpasswd i -Bbn u \\\n pw"))
	f.Add([]byte("openssl enc -k pw -passin 'pass:a b' -pass \\\"pass:c\\\" -passout pass:`x`"))
	f.Add([]byte("rclone --config c config create r s key k pass $(rclone obscure `x`) \"$(rclone obscure (y)\" <<<z 3>&-"))
	f.Add([]byte("<add key=\"ApiKey\" value=\\\"Zk3qP9xW2vL8nR4t\\\"/><add value='x' key='pass'"))
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, find := range []func([]byte, []span) []span{findHtpasswd, findOpenSSL, findRclone, findAddKeyValues} {
			for _, s := range find(text, nil) {
				require.True(t, 0 <= s.start && s.start < s.end && s.end <= len(text), "span %v of %q", s, text)
			}
		}
	})
}
