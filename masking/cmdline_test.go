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
	f.Add([]byte("echo -n a 'b' \\\"c\\\" | x \\\n --password-stdin <<< 'p w'; printf -- '%s' x|y --password-stdin <<<"))
	f.Add([]byte("<add key=\"ApiKey\" value=\\\"Zk3qP9xW2vL8nR4t\\\"/><add value='x' key='pass'"))
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, find := range []func([]byte, []span) []span{findHtpasswd, findOpenSSL, findRclone, findAddKeyValues, findPasswordStdin} {
			for _, s := range find(text, nil) {
				require.True(t, 0 <= s.start && s.start < s.end && s.end <= len(text), "span %v of %q", s, text)
			}
		}
	})
}

// TestCommandPasswords: the finders that read a command's words mask the password it is
// given, and leave what only names one: a word that is one shell expansion ($pw, "$1",
// "${p}", $(cat f)), usage text and prose. A word with literal text besides an expansion
// (pw$x, P@ss$word1, Pa$$w0rd) is masked.
func TestCommandPasswords(t *testing.T) {
	tests := []detectorCase{
		// Shell expansions, in any case, quoted or not.
		{name: "htpasswd expansions", in: "htpasswd -b \"$file\" \"$user\" \"$pass\"; htpasswd -b $F $U $2; htpasswd -nb u \"${p}\"; htpasswd -nb u $(cat f); htpasswd -nb u \"`cat f`\""},
		{name: "openssl expansions", in: "openssl enc -k \"$key\" -k $1 -k ${PW} -k \"$(cat \"$f\")\""},
		// A word with literal text besides an expansion, or a '$' that expands nothing whole.
		{name: "literal text and an expansion", in: "htpasswd -nb u pw$x; htpasswd -nb u \"a$(cat f)\"; openssl enc -k pre`cat f`\n" +
			"htpasswd -b f admin P@ss$word1; htpasswd -b f admin Pa$$w0rd\necho Pa$$w0rd | docker login --password-stdin\ndocker login --password-stdin <<< Pa$$w0rd",
			want: "htpasswd -nb u <<P:pw$x>>; htpasswd -nb u \"<<P:a$(cat f)>>\"; openssl enc -k <<P:pre`cat f`>>\n" +
				"htpasswd -b f admin <<P:P@ss$word1>>; htpasswd -b f admin <<P:Pa$$w0rd>>\necho <<P:Pa$$w0rd>> | docker login --password-stdin\ndocker login --password-stdin <<< <<P:Pa$$w0rd>>"},
		{name: "rclone expansions", in: "rclone config create r sftp pass \"$pw\" && rclone config update r pass $1; rclone obscure \"$pw\""},
		{name: "echo expansions", in: "echo \"$pw\" | docker login --password-stdin\necho $1 | docker login --password-stdin\necho -n \"${p}\" | docker login --password-stdin"},
		{name: "a literal dollar", in: "htpasswd -nb u 'S3cr$t9x'; htpasswd -nb u S3cr\\$t9x; openssl enc -k 'pa$$w0rd'; htpasswd -nb u Pw9$",
			want: "htpasswd -nb u '<<P:S3cr$t9x>>'; htpasswd -nb u <<P:S3cr\\$t9x>>; openssl enc -k '<<P:pa$$w0rd>>'; htpasswd -nb u <<P:Pw9$>>"},
		// Usage text and prose.
		{name: "htpasswd usage", in: "htpasswd -b[cmB25dpsDv] [-C cost] [-r rounds] passwordfile username password\nhtpasswd -b [ -c ] [ -i ]\nhtpasswd -nb <user> <password>\nhtpasswd -nb user pw..."},
		{name: "prose", in: "Use htpasswd -b when you want to script it. The openssl -k option is deprecated. Run rclone obscure password [flags] first; htpasswd -nb u secret…"},
		{name: "real passwords", in: "htpasswd -b f admin S3cretPw9; htpasswd -nb admin correcthorsebatterystaple; openssl enc -k pa-ss; rclone obscure Pw0rd9",
			want: "htpasswd -b f admin <<P:S3cretPw9>>; htpasswd -nb admin <<P:correcthorsebatterystaple>>; openssl enc -k <<P:pa-ss>>; rclone obscure <<P:Pw0rd9>>"},
		// Passwords of letters alone where the command's shape says it is one.
		{name: "letters at a command's end", in: "htpasswd -b f admin Hunterpass\nhtpasswd -bc /etc/nginx/.htpasswd admin changeme; openssl enc -k Hunterpass -in f\nrclone obscure Hunterpass | x\nhtpasswd -nb u letmein >out && openssl enc -k changeme",
			want: "htpasswd -b f admin <<P:Hunterpass>>\nhtpasswd -bc /etc/nginx/.htpasswd admin <<P:changeme>>; openssl enc -k <<P:Hunterpass>> -in f\nrclone obscure <<P:Hunterpass>> | x\nhtpasswd -nb u <<P:letmein>> >out && openssl enc -k <<P:changeme>>"},
		{name: "letters in prose", in: "Use htpasswd -b when you want to script it\n(as in htpasswd -nb admin Hunterpass). The openssl -k option is deprecated; run rclone obscure password first"},
		// echo and printf into --password-stdin, over continued lines; here-strings.
		{name: "echo into a continued login", in: "echo S3cretPw9 | docker login -u ci \\\n  --password-stdin r.example.com\nprintf -- '%s\\n' 'Pw0rd 9' |\thelm registry login \\\n --password-stdin r",
			want: "echo <<P:S3cretPw9>> | docker login -u ci \\\n  --password-stdin r.example.com\nprintf -- '%s\\n' '<<P:Pw0rd 9>>' |\thelm registry login \\\n --password-stdin r"},
		{name: "echo into --password-stdin=true", in: "echo S3cr3tPw9 | docker login --password-stdin=true\nprintf '%s' 'Pw0rd 9' | docker login --password-stdin=1 <<< Tok3n9x",
			want: "echo <<P:S3cr3tPw9>> | docker login --password-stdin=true\nprintf '%s' '<<P:Pw0rd 9>>' | docker login --password-stdin=1 <<< <<P:Tok3n9x>>"},
		{name: "echo not into --password-stdin", in: "echo S3cretPw9 || docker login --password-stdin\necho S3cretPw9 | tee f; docker login --password-stdin\necho S3cretPw9 > f | docker login --password-stdin2\n" +
			"echo -n | docker login --password-stdin\necho `cat f` | docker login --password-stdin\necho 'S3cretPw9 | docker login --password-stdin"},
		{name: "here-strings", in: "docker login --password-stdin <<< S3cretPw9 && x <<< Pw0rd9\n<<<'Tok3n 9' <<< \"$pw\" oras login --password-stdin\nx <<< Pw0rd9; docker login --password-stdin",
			want: "docker login --password-stdin <<< <<P:S3cretPw9>> && x <<< Pw0rd9\n<<<'<<P:Tok3n 9>>' <<< \"$pw\" oras login --password-stdin\nx <<< Pw0rd9; docker login --password-stdin"},
		// Only openssl's single-dash -pass names a source with env:, file:, fd: or stdin.
		{name: "another tool's --pass", in: "someclient --pass env:S3cretPw9 && other --pass file:Pw0rd9",
			want: "someclient --pass <<P:env:S3cretPw9>> && other --pass <<P:file:Pw0rd9>>"},
		{name: "openssl's -pass sources", in: "openssl rsa -pass env:PW -passin file:/run/pw -passout stdin"},
		// openssl's -flag=value.
		{name: "openssl joined values", in: "openssl enc -k=S3cretPw9 -in a; openssl pkcs12 -passin='pass:S3cret Pw9' --passout=pass:\"Pw0rd 9\"",
			want: "openssl enc -k=<<P:S3cretPw9>> -in a; openssl pkcs12 -passin='pass:<<P:S3cret Pw9>>' --passout=pass:\"<<P:Pw0rd 9>>\""},
		{name: "openssl joined sources", in: "openssl enc -k=$K -passin=env:PW -passout=file:/run/pw -k= -kfile=/run/k -in=a"},
	}
	checkDetectorCases(t, tests)
}

// TestOpenSSLExpansions: openssl's finder leaves pass:$pw in any case. (The keyword rule reads
// pass:$pw as a key and a value, which a '$' and lower-case letters do not make a reference.)
func TestOpenSSLExpansions(t *testing.T) {
	assert.Empty(t, findOpenSSL([]byte("openssl enc -pass \"pass:$pw\" -passin pass:$1 -passout 'pass:'\"$x\" -pass=\"pass:$p\""), nil))
}
