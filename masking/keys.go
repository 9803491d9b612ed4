package masking

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// keyClass says how secret-sounding the name of a value is: an object key, an environment
// variable name, a command-line flag or the key of a key=value pair in text.
type keyClass uint8

const (
	keyPlain    keyClass = iota
	keyPassword          // a password: any value that is not obviously a reference is masked
	keySecret            // a token, key or other credential: high-entropy values are masked
)

// Thresholds of the keyword-entropy rule.
const (
	minSecretLen     = 8
	minSecretEntropy = 3.0 // bits per byte
)

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) }

// lastWords splits off the last word of an identifier (snake, kebab, dotted, camel or upper
// case), lower-cased into buf, and reports the lower-cased word before it (empty when none).
func lastWords(k []byte, buf *[64]byte) (last, prev []byte) {
	end := len(k)
	for end > 0 && !isAlnum(k[end-1]) {
		end--
	}
	for end > 0 && isDigit(k[end-1]) {
		end--
	}
	if end == 0 {
		return nil, nil
	}
	start := wordStart(k, end)
	last = lower(buf[:0:32], k[start:end])
	p := start
	for p > 0 && !isAlnum(k[p-1]) {
		p--
	}
	if p > 0 {
		prev = lower(buf[32:32:64], k[wordStart(k, p):p])
	}
	return last, prev
}

// wordStart returns where the word ending at k[end-1] starts.
func wordStart(k []byte, end int) int {
	i := end
	if isUpper(k[end-1]) {
		for i > 0 && (isUpper(k[i-1]) || isDigit(k[i-1])) {
			i--
		}
		return i
	}
	for i > 0 && (isLower(k[i-1]) || isDigit(k[i-1])) {
		i--
	}
	if i > 0 && isUpper(k[i-1]) {
		i--
	}
	return i
}

// lower appends the lower-cased last cap(dst) bytes of s to dst.
func lower(dst, s []byte) []byte {
	if len(s) > cap(dst) {
		s = s[len(s)-cap(dst):]
	}
	for _, c := range s {
		if isUpper(c) {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

var (
	passwordSuffixes = []string{"password", "passwd", "passphrase", "pwd", "storepass", "keypass"}
	passwordWords    = []string{"pass", "pw", "passcode", "requirepass"}
	secretSuffixes   = []string{
		"secret", "token", "apikey", "accesskey", "secretkey", "privatekey", "credential",
		"creds", "signature", "auth", "authorization", "cookie",
	}
	// notSecretKeys are words that, before "key", name something that is not a secret.
	notSecretKeys = []string{
		"public", "pub", "sort", "partition", "primary", "foreign", "cache", "routing",
		"label", "topology", "annotation", "lookup", "index", "match", "node", "hash",
	}
)

// tableWord is a suffix or word of the tables, with the class it gives.
type tableWord struct {
	s     string
	whole bool // the word must be s, not end with it
	class keyClass
}

// wordsByEnd holds, by last byte, the suffixes and words of passwordSuffixes, passwordWords and
// secretSuffixes that end with it, in the order classifyTables reads them: a word can only match
// those that end with its own last byte.
var wordsByEnd = func() (ends [256][]tableWord) {
	for _, list := range []struct {
		words []string
		whole bool
		class keyClass
	}{{passwordSuffixes, false, keyPassword}, {passwordWords, true, keyPassword}, {secretSuffixes, false, keySecret}} {
		for _, s := range list.words {
			ends[s[len(s)-1]] = append(ends[s[len(s)-1]], tableWord{s: s, whole: list.whole, class: list.class})
		}
	}
	return ends
}()

// checksumWords name a checksum or digest of something: checksum/secret (a Helm chart's
// annotation that restarts pods when a Secret changes) holds a hash, not the secret.
var checksumWords = []string{"checksum", "hash", "digest", "fingerprint", "sha1", "sha256", "sha512", "md5"}

// namesChecksum reports whether a word of k is one of checksumWords.
func namesChecksum(k []byte) bool {
	end := len(k)
	for end > 0 {
		for end > 0 && !isAlnum(k[end-1]) {
			end--
		}
		if end == 0 {
			return false
		}
		start := wordStart(k, end)
		var buf [16]byte
		if end-start <= len(buf) {
			w := lower(buf[:0:16], k[start:end])
			for _, c := range checksumWords {
				if string(w) == c {
					return true
				}
			}
		}
		end = start
	}
	return false
}

// keyCache remembers the classes of the keys classified last: the members of a list's items,
// the fields of watch events, the keys of configuration files, repeat their names. It is set
// associative, two keys to a set, so that two names that hash alike (namespace and uid) do
// not take each other's place. A walker has one for the names of JSON members, which are never
// masked, and one for the keys of assignments in text, which can be part of a value (abc in
// password=abc:def) and are forgotten with the document (walker.forgetText).
type keyCache [keyCacheSets][2]keyCacheEntry

const (
	keyCacheBits = 5
	keyCacheSets = 1 << keyCacheBits
)

type keyCacheEntry struct {
	n     uint8 // length of the key; 0: empty
	key   [31]byte
	class keyClass
}

// classify returns classifyKey(k).
func (kc *keyCache) classify(k []byte) keyClass {
	if !mayBeSecret(k) {
		return keyPlain
	}
	if len(k) == 0 || len(k) > len(kc[0][0].key) {
		return classifyKey(k)
	}
	set := &kc[keySet(k)]
	for i := range set {
		if e := &set[i]; int(e.n) == len(k) && string(e.key[:e.n]) == string(k) {
			return e.class
		}
	}
	c := classifyKey(k)
	// The newest key goes first; the one it displaces takes the place of the older.
	set[1] = set[0]
	set[0].n, set[0].class = uint8(len(k)), c
	copy(set[0].key[:], k)
	return c
}

// keySet returns the set of a key cache for a key of 1 to 31 bytes, hashed from its first and
// last eight bytes and its length: keys of one pattern (db-0.internal, db-1.internal) differ
// in bytes near one end.
func keySet(k []byte) int {
	var a, b uint64
	if len(k) >= 8 {
		a = binary.LittleEndian.Uint64(k)
		b = binary.LittleEndian.Uint64(k[len(k)-8:])
	} else {
		for i, c := range k {
			a |= uint64(c) << (8 * i)
		}
		b = a
	}
	h := (a ^ bits.RotateLeft64(b, 29) ^ uint64(len(k))) * 0x9e3779b97f4a7c15
	return int(h >> (64 - keyCacheBits))
}

// secretEnds holds, by the last two letters of a word (lower case), whether a word the tables
// give a class to, or its plural, can end with them: the last two letters of a suffix or of a
// whole word, and the last letter of one followed by s.
var secretEnds = func() (t [26 * 26]bool) {
	words := append([]string{"sig", "key", "base"}, passwordSuffixes...)
	words = append(append(words, passwordWords...), secretSuffixes...)
	for _, w := range words {
		t[int(w[len(w)-2]-'a')*26+int(w[len(w)-1]-'a')] = true
		t[int(w[len(w)-1]-'a')*26+int('s'-'a')] = true
	}
	return t
}()

// mayBeSecret is a quick test that classifyKey(k) is keyPlain when it returns false: the last
// word of k (lastWords) is classified only when it, or it without a plural s, ends with a word
// of the tables, all of which have two letters or more; so its last two bytes are letters
// that end a word of the tables or its plural (secretEnds). The end of the last word is found
// as lastWords finds it; a word of one letter gives keyPlain whatever the byte before it.
func mayBeSecret(k []byte) bool {
	end := len(k)
	for end > 0 && !isAlnum(k[end-1]) {
		end--
	}
	for end > 0 && isDigit(k[end-1]) {
		end--
	}
	if end < 2 {
		return false
	}
	a, b := k[end-2]|0x20, k[end-1]|0x20 // lower case for letters; no other byte becomes one
	if !isLower(a) || !isLower(b) {
		return false
	}
	return secretEnds[int(a-'a')*26+int(b-'a')]
}

// classifyKey classifies the name of a value by its last word.
func classifyKey(k []byte) keyClass {
	if len(k) == 0 || len(k) > 256 {
		return keyPlain
	}
	var buf [64]byte
	last, prev := lastWords(k, &buf)
	if len(last) == 0 {
		return keyPlain
	}
	if c := classifyLast(last, prev); c == keyPlain || !namesChecksum(k) {
		return c
	}
	return keyPlain
}

// classifyLast classifies a key by its last word and the one before.
func classifyLast(last, prev []byte) keyClass {
	if c := classifyWord(last, prev); c != keyPlain {
		return c
	}
	if len(last) > 2 && last[len(last)-1] == 's' { // plurals: passwords, tokens, credentials
		return classifyWord(last[:len(last)-1], prev)
	}
	return keyPlain
}

// classifyWord classifies w, after the word prev, as classifyTables does, reading only the
// suffixes and words of the tables that end with w's last byte.
func classifyWord(w, prev []byte) keyClass {
	if len(w) == 0 {
		return keyPlain
	}
	for _, t := range wordsByEnd[w[len(w)-1]] {
		if t.whole && string(w) == t.s || !t.whole && len(w) >= len(t.s) && string(w[len(w)-len(t.s):]) == t.s {
			return t.class
		}
	}
	return classifySigKey(w, prev)
}

// classifyTables classifies w, after the word prev, by reading the tables in full.
func classifyTables(w, prev []byte) keyClass {
	for _, s := range passwordSuffixes {
		if bytes.HasSuffix(w, []byte(s)) {
			return keyPassword
		}
	}
	for _, s := range passwordWords {
		if string(w) == s {
			return keyPassword
		}
	}
	for _, s := range secretSuffixes {
		if bytes.HasSuffix(w, []byte(s)) {
			return keySecret
		}
	}
	return classifySigKey(w, prev)
}

// classifySigKey classifies the words sig and key, and base after key (Rails'
// SECRET_KEY_BASE), the last of classifyTables' checks.
func classifySigKey(w, prev []byte) keyClass {
	switch string(w) {
	case "sig":
		return keySecret
	case "base":
		if string(prev) == "key" {
			return keySecret
		}
		return keyPlain
	case "key":
		if len(prev) == 0 {
			return keyPlain
		}
		for _, s := range notSecretKeys {
			if string(prev) == s {
				return keyPlain
			}
		}
		return keySecret
	}
	return keyPlain
}

// entropy returns the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int32
	for _, c := range b {
		counts[c]++
	}
	return entropyOf(&counts, len(b))
}

// entropyOf returns the Shannon entropy in bits per byte of n bytes whose counts by value are
// counts; n is not 0.
func entropyOf(counts *[256]int32, n int) float64 {
	nf := float64(n)
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / nf
			h -= p * math.Log2(p)
		}
	}
	return h
}

// notSecretValues are values that are never credentials themselves.
var notSecretValues = []string{
	"true", "false", "yes", "no", "on", "off", "null", "nil", "none", "enabled", "disabled",
	"required", "optional", "redacted", "[redacted]", "<redacted>", "[filtered]", "hidden",
}

// proseWords start values that are prose, not credentials ("password: the one for the
// database", "token: must be a JWT").
var proseWords = []string{
	"the", "a", "an", "is", "are", "was", "must", "should", "will", "can", "may", "for", "of",
	"to", "and", "or", "be", "not", "if", "when", "this", "that", "used", "see", "set", "empty",
	"missing", "invalid", "expired", "changed", "incorrect", "wrong", "required",
}

// obviouslyNotSecret reports values that a secret-sounding name does not make secret:
// empty values, booleans, references to other values ($(VAR), ${VAR}, {{ template }}), angle
// bracket placeholders, runs of * or x, and values Gatehouse already masked.
func obviouslyNotSecret(v []byte) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || bytes.HasPrefix(v, placeholderPrefix) {
		return true
	}
	if len(v) <= 12 {
		var buf [12]byte
		lv := lower(buf[:0], v)
		for _, s := range notSecretValues {
			if string(lv) == s {
				return true
			}
		}
	}
	// The first word, up to the first blank, is looked up when it has 10 bytes or fewer: the
	// blank is looked for in the 11 bytes that hold it then.
	if n := blankIn(v[:min(len(v), 11)]); n <= 10 {
		var buf [10]byte
		lw := lower(buf[:0], v[:n])
		for _, s := range proseWords {
			if string(lw) == s {
				return true
			}
		}
	}
	switch {
	case v[0] == '$' && len(v) > 1 && (v[1] == '(' || v[1] == '{' || v[1] == '_' || isUpper(v[1])):
		return true
	case bytes.HasPrefix(v, []byte("{{")), bytes.HasPrefix(v, []byte("%(")):
		return true
	case v[0] == '<' && v[len(v)-1] == '>':
		return true
	}
	if len(v) >= 3 && (v[0] == '*' || v[0] == 'x' || v[0] == 'X' || v[0] == '#' || v[0] == '.') {
		same := true
		for _, c := range v {
			if c != v[0] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// blankIn returns the index of the first blank (space or tab) in b, or len(b).
func blankIn(b []byte) int {
	for i, c := range b {
		if c == ' ' || c == '\t' {
			return i
		}
	}
	return len(b)
}

// keyMasks applies the keyword rules to value v named by a key of class c. It returns the
// detector ID of the rule that masks the value, or -1.
func keyMasks(c keyClass, key, v []byte) int {
	return keyMasksWith(c, key, v, entropy)
}

// keyMasksWith is keyMasks taking v's entropy from ent(v).
func keyMasksWith(c keyClass, key, v []byte, ent func([]byte) float64) int {
	switch c {
	case keyPassword:
		if obviouslyNotSecret(v) {
			return -1
		}
		// $PWD and friends hold the working directory, not a password.
		if v[0] == '/' && bytes.EqualFold(bytes.TrimLeft(key, "-"), []byte("pwd")) {
			return -1
		}
		if namesPassSource(key, v) {
			return -1
		}
		return idPasswordAssignment
	case keySecret:
		if len(v) >= minSecretLen && ent(v) >= minSecretEntropy && !obviouslyNotSecret(v) {
			return idKeywordEntropy
		}
	}
	return -1
}

// namesPassSource reports whether v, the value of openssl's -pass, -passin or -passout flag,
// names where the password is (env:VAR, file:path, fd:3, stdin) or gives it as a reference
// (pass:$PW) rather than holding it. openssl's flags take a single dash; other tools' --pass
// takes the password itself, env: and all.
func namesPassSource(key, v []byte) bool {
	switch string(key) {
	case "-pass", "-passin", "-passout":
	default:
		return false
	}
	for _, p := range []string{"env:", "file:", "fd:"} {
		if bytes.HasPrefix(v, []byte(p)) {
			return true
		}
	}
	if rest, ok := bytes.CutPrefix(v, []byte("pass:")); ok {
		return obviouslyNotSecret(rest)
	}
	return string(v) == "stdin"
}
