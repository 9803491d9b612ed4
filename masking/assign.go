package masking

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// This file holds the detector for credentials assigned to secret-sounding keys in free text:
// key=value and key: value pairs (connection strings, properties, YAML, logfmt, query strings,
// JSON documents held as text) and command-line flags (--password value).

const (
	maxKeyLen     = 128
	maxValueLen   = 4096
	maxValueWords = 4   // words of an unquoted value
	maxWordsLen   = 128 // length of an unquoted value of several words
)

func isKeyByte(c byte) bool {
	return isAlnum(c) || c == '_' || c == '-' || c == '.'
}

// keyBytes marks the bytes isKeyByte reports: keyBefore looks up every byte of a key in it.
var keyBytes = byteTable(isKeyByte)

// isQuote reports the quotes around keys and values.
func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }

// quotedAt reports whether the value at text[v1], whose separator ends at vs, opens with a
// quote: a quote byte, or an escaped \u0022.
func quotedAt(text []byte, vs, v1 int) bool {
	return v1 > vs && (isQuote(text[v1-1]) || v1-vs >= 6 && string(text[v1-6:v1]) == `\u0022`)
}

// endsValue reports the bytes that end an unquoted value.
func endsValue(c byte) bool {
	switch c {
	case '\n', '\r', ';', '&', '"', '\'', '`', '<', '>', ')', ']', '}':
		return true
	}
	return false
}

// valueEnds marks the bytes endsValue reports.
var valueEnds = byteTable(endsValue)

// byteTable returns the bytes f reports as a table.
func byteTable(f func(byte) bool) (t [256]bool) {
	for c := range len(t) {
		t[c] = f(byte(c))
	}
	return t
}

// assignmentSeps are the bytes findAssignments looks at: those that separate a key and its value.
var assignmentSeps = [256]bool{'=': true, ':': true, ' ': true, '\t': true}

// Repeated bytes for nextSeparator: one in each byte of a word, the high bit of each byte.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// sepSet is a set of separators nextSeparator looks for: up to four bytes, each repeated in
// every byte of a word (a byte may be given twice), and the table of them.
type sepSet struct {
	words [4]uint64
	table *[256]bool
}

// keyValueSeps are the separators of key=value and key: value, flagSeps are those and the
// blanks after a flag (--password value).
var (
	keyValueSeps = sepSet{[4]uint64{'=' * ones, ':' * ones, '=' * ones, ':' * ones}, &[256]bool{'=': true, ':': true}}
	flagSeps     = sepSet{[4]uint64{'=' * ones, ':' * ones, ' ' * ones, '\t' * ones}, &assignmentSeps}
)

// nextSeparator returns the index of the first byte of text from text[i] on in the set s, or
// len(text). It reads eight bytes at a time: a text has a separator every few words at most,
// and most of its bytes are passed over. The first byte is looked at alone, since separators
// come in runs too (a colon and a blank, indentation).
func nextSeparator(text []byte, i int, s *sepSet) int {
	if i < len(text) && s.table[text[i]] {
		return i
	}
	w := &s.words
	for i++; i+8 <= len(text); i += 8 {
		x := binary.LittleEndian.Uint64(text[i:])
		if m := zeroBytes(x^w[0]) | zeroBytes(x^w[1]) | zeroBytes(x^w[2]) | zeroBytes(x^w[3]); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(text); i++ {
		if s.table[text[i]] {
			return i
		}
	}
	return len(text)
}

// zeroBytes returns a word whose lowest set bit is the high bit of the lowest zero byte of x,
// and 0 when x has none. The bits above it may be set for bytes that are not zero (a borrow
// runs through them), so only the lowest is looked at.
func zeroBytes(x uint64) uint64 { return (x - ones) &^ x & highs }

// findAssignments appends the values of secret-sounding assignments in text to spans, as
// password-assignment (password keys, any value) or keyword-entropy (other secret keys,
// high-entropy values). Keys are classified through w's cache of text keys when w is not nil:
// the keys of configuration files repeat from one value to the next.
func findAssignments(w *walker, text []byte, spans []span) []span {
	// A blank separates a flag from its value, and a flag starts with flagStart (keyBefore):
	// in a text without one, blanks separate nothing.
	seps := &keyValueSeps
	if bytes.IndexByte(text, flagStart) >= 0 {
		seps = &flagSeps
	}
	return findAssignmentsAt(w, text, spans, seps)
}

// findAssignmentsAt is findAssignments looking at the separators of seps only.
func findAssignmentsAt(w *walker, text []byte, spans []span, seps *sepSet) []span {
	var kc *keyCache
	if w != nil {
		kc, w.textKeysUsed = &w.textKeys, true
	}
	lines := lineReader{notIndent: -1}
	var vr valueReader
	for i := nextSeparator(text, 0, seps); i < len(text); i = nextSeparator(text, i+1, seps) {
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
		ke := keyEnd(text, i, flag)
		if !keyEndMayBeSecret(text, ke) {
			// keyBefore's key, if any, would be classified keyPlain.
			continue
		}
		key, ok := keyBefore(text, i, flag)
		if !ok {
			continue
		}
		var c keyClass
		if kc != nil {
			c = kc.classify(key)
		} else {
			c = classifyKey(key)
		}
		if c == keyPlain {
			continue
		}
		v1, v2 := vr.valueAfter(text, vs, flag, flag || !lines.startsLine(text, i))
		if text[ke] == '\\' && (v1 == vs || text[v1-1] == ' ' || text[v1-1] == '\t') {
			// An escaped quote ended the key, and the value is not quoted
			// (\u0022password\u0022: null, \u0022a\u0022: 1). The values of keys so quoted
			// end before the next such key, so that this reads each byte once.
			v2 = beforeUQuote(text, v1, v2)
		}
		if v1 == v2 || hasPrefixFold(text[v1:], "invalid value: ") {
			// An API server field error; findFieldErrors handles those.
			continue
		}
		if text[vr.firstWordEnd(text, v1, v2)-1] == ':' && !quotedAt(text, vs, v1) {
			// A nested key (YAML: "token:\n  path: x", "token: expirationSeconds: 3600"); a
			// quoted value is a value whatever it ends with (password: "hunter2:").
			continue
		}
		// Keep the scheme of an authorization value: Authorization: Bearer <masked>.
		for _, scheme := range []string{"bearer ", "basic ", "token "} {
			if hasPrefixFold(text[v1:v2], scheme) {
				v1 += len(scheme)
				break
			}
		}
		if id := keyMasksWith(c, key, text[v1:v2], func([]byte) float64 { return vr.entropy(text, v1, v2) }); id >= 0 {
			spans = append(spans, span{v1, v2, id})
			i = v2 - 1
		}
	}
	return spans
}

// lineReader reports whether the key before a separator is the first thing on its line (after
// indentation, a list dash or a quote), as in YAML and properties files, whose values may have
// several words; in prose, only one word is taken. It answers for separators in ascending
// order and reads each byte of the text once: a line of a megabyte with a separator every few
// bytes is not read back to its start for each.
type lineReader struct {
	pos       int // the bytes before pos have been read
	word      int // where the word that ends at pos starts: after the last blank or newline
	notIndent int // the first byte of pos's line that is not indentation, or -1
}

// isIndent reports the bytes startsLine accepts before a key on its line.
func isIndent(c byte) bool { return c == ' ' || c == '\t' || c == '-' || c == '"' || c == '\'' }

// startsLine reports whether the key before text[sep] starts its line; sep is not before the
// separator asked about last. The bytes read since then are searched from their end for the
// last blank and the last line break, and from that on for the first byte that is not
// indentation, each search stopping at what it looks for: each byte is read at most three
// times in all, most once or not at all.
func (r *lineReader) startsLine(text []byte, sep int) bool {
	if sep > r.pos {
		seg := text[r.pos:sep]
		for j := len(seg) - 1; j >= 0; j-- {
			if isSpace(seg[j]) {
				r.word = r.pos + j + 1
				break
			}
		}
		from := r.pos // where sep's line, or the part of it not read before, starts
		if n := bytes.LastIndexByte(seg, '\n'); n >= 0 {
			r.notIndent = -1
			from = r.pos + n + 1
		}
		if r.notIndent < 0 {
			for j := from; j < sep; j++ {
				if !isIndent(text[j]) {
					r.notIndent = j
					break
				}
			}
		}
		r.pos = sep
	}
	// The word before the separator is preceded on its line by indentation only.
	return r.notIndent < 0 || r.notIndent >= r.word
}

// keyEnd returns where the key before the separator at text[sep] ends: at the separator for
// flags, else before the blanks and the quote that may come between them.
func keyEnd(text []byte, sep int, flag bool) int {
	e := sep
	if !flag {
		for e > 0 && (text[e-1] == ' ' || text[e-1] == '\t') {
			e--
		}
		if e > 0 && isQuote(text[e-1]) {
			// A quote, escaped or not: \"password\": "x" in JSON held in a string.
			e--
			for e > 0 && text[e-1] == '\\' {
				e--
			}
		} else if e >= len(uQuote) && text[e-1] == uQuote[len(uQuote)-1] && string(text[e-len(uQuote):e]) == uQuote {
			e -= len(uQuote)
		}
	}
	return e
}

// keyEndMayBeSecret is a quick test that the key keyBefore returns, if any, for a key that
// ends at text[e] is classified keyPlain when it returns false: it is mayBeSecret(key) read
// from the key's end without first finding its start. mayBeSecret reads back over the bytes
// that are not letters or digits, then over digits, and looks at the two bytes before; in a
// key the former are '.', '-' and '_' (isKeyByte), and both runs are key bytes, so that a
// read bounded by the longest key (maxKeyLen) stops where mayBeSecret's does, at the key's
// start at the latest. When it stops fewer than two bytes into the text (or into the window of
// maxKeyLen bytes it reads) both answer false;
// when it stops fewer than two bytes into a shorter key this may answer true, which only
// sends the separator on to keyBefore.
//
// It is asked about every separator of a text, most of which follow a byte no secret key ends
// with (a blank, a colon, a letter that ends no word of the tables): those it answers by
// the last byte alone (keyEndBytes), small enough to be inlined where it is asked.
func keyEndMayBeSecret(text []byte, e int) bool {
	return e > 0 && keyEndBytes[text[e-1]] && keyEndReadBack(text, e)
}

// keyEndBytes marks the bytes keyEndReadBack can answer true after: those it reads back over
// ('.', '-', '_' and digits), and the letters, in either case, that end a pair of secretEnds,
// one of which is the last byte it looks at when the key ends with a letter.
var keyEndBytes = byteTable(func(c byte) bool {
	if isDigit(c) || c == '.' || c == '-' || c == '_' {
		return true
	}
	if !isLower(c | 0x20) {
		return false
	}
	for a := range 26 {
		if secretEnds[a*26+int(c|0x20-'a')] {
			return true
		}
	}
	return false
})

// keyEndReadBack is keyEndMayBeSecret for a key that may end with a secret word: it reads
// back from text[e] as mayBeSecret reads back from the key's end.
func keyEndReadBack(text []byte, e int) bool {
	lo := max(0, e-maxKeyLen)
	j := e
	for j > lo && (text[j-1] == '.' || text[j-1] == '-' || text[j-1] == '_') {
		j--
	}
	for j > lo && isDigit(text[j-1]) {
		j--
	}
	if j-lo < 2 {
		return false
	}
	a, b := text[j-2]|0x20, text[j-1]|0x20 // as mayBeSecret lower-cases them
	return isLower(a) && isLower(b) && secretEnds[int(a-'a')*26+int(b-'a')]
}

// flagStart is the first byte of a flag (--password). findAssignments looks at blanks, which
// separate a flag from its value, only in a text that holds it.
const flagStart = '-'

// keyBefore returns the key that ends before the separator at text[sep]. For flags (a blank
// separator) the key must be a whole token starting with flagStart.
func keyBefore(text []byte, sep int, flag bool) ([]byte, bool) {
	e := keyEnd(text, sep, flag)
	s := e
	for s > 0 && e-s < maxKeyLen && keyBytes[text[s-1]] {
		s--
	}
	if s > 0 && text[s-1] == '\\' && e-s > len(uQuote)-1 && string(text[s:s+len(uQuote)-1]) == uQuote[1:] {
		s += len(uQuote) - 1 // the key of \u0022password\u0022: x
	}
	if s == e {
		return nil, false
	}
	if flag {
		if text[s] != flagStart || e-s < 3 || (s > 0 && !isSpace(text[s-1])) {
			return nil, false
		}
		if joinedFlagValue(text[s:e]) {
			return nil, false // -pS3cretPw9: a letter's flag and its value, not a name
		}
	}
	return text[s:e], true
}

// joinedFlagValue reports whether flag, written with one dash, is a letter's flag with its value
// joined to it (-pS3cretPw9, -p4ssword, -pSecret), not a name: what follows the letter starts
// with an upper-case letter after a lower-case one, or has a digit before a letter. Names of
// one-dash flags are lower case or camel case from their second word (-storepass, -dbPassword,
// -apiKey), start each word with a capital (-SecretKey), or end in a number (-password2).
func joinedFlagValue(flag []byte) bool {
	if len(flag) < 3 || flag[0] != '-' || flag[1] == '-' {
		return false
	}
	if isLower(flag[1]) && isUpper(flag[2]) {
		return true
	}
	for i := 2; i+1 < len(flag); i++ {
		if isDigit(flag[i]) && (isLower(flag[i+1]) || isUpper(flag[i+1])) {
			return true
		}
	}
	return false
}

// valueReader reads the values of the separators of a text, in ascending order, so that the
// bytes of unquoted values are read a bounded number of times in all. A line of a megabyte
// with a separator every few bytes ("token=aaaa:token=aaaa:...") would otherwise be read up to
// maxValueLen bytes from each separator, three times: for the value's end, its first word and
// its entropy. It remembers a run of bytes that holds no stop (a byte that ends an unquoted
// value, or a blank), and the counts of the bytes of the last value whose entropy it took. A
// quoted value is read from its quote to the next, which the next quoted value (another
// separator and quote) ends before.
type valueReader struct {
	from, to int // text[from:to] holds no stop; text[to] is one, or was not read yet

	lo, hi int         // counts holds the bytes of text[lo:hi]
	counts *[256]int32 // made for the first long value: most texts have none
}

// shortValue is the length up to which valueReader counts the bytes of a value afresh.
const shortValue = 256

// isStop reports the bytes nextStop looks for: those that end an unquoted value, and blanks.
var isStop = byteTable(func(c byte) bool { return endsValue(c) || c == ' ' || c == '\t' })

// nextStop returns the index of the first stop in text[i:limit], or limit.
func (r *valueReader) nextStop(text []byte, i, limit int) int {
	if i < r.from || i > r.to {
		r.from, r.to = i, i
	}
	for r.to < limit && !isStop[text[r.to]] {
		r.to++
	}
	return min(r.to, limit)
}

// valueAfter returns the bounds of the value that starts at or after text[i]: a quoted string,
// or an unquoted value of one word or, unless oneWord, a few.
func (r *valueReader) valueAfter(text []byte, i int, flag, oneWord bool) (int, int) {
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
	if q, run, n := escapedQuote(text, i); n > 0 {
		return escapedValue(text, i+n, q, run)
	}
	if flag && (text[i] == '-' || isSpace(text[i])) {
		return i, i
	}
	s := i
	limit := min(len(text), s+maxValueLen)
	j := i
	words := 1
	for {
		if j = r.nextStop(text, j, limit); j == limit {
			break
		}
		c := text[j]
		if valueEnds[c] {
			break
		}
		if j == s || (text[j-1] != ' ' && text[j-1] != '\t') {
			// A blank ends the value when another assignment or the end of the line follows
			// (logfmt: a=1 b=2); otherwise the value may have a few words (a passphrase in
			// YAML or properties).
			if words++; oneWord || words > maxValueWords || j-s > maxWordsLen || nextIsAssignment(text, j) {
				break
			}
		}
		j++
	}
	if j < len(text) && isQuote(text[j]) {
		j = beforeEscapes(text, s, j)
	}
	for j > s && (text[j-1] == ' ' || text[j-1] == '\t' || text[j-1] == ',') {
		j--
	}
	return s, j
}

// beforeEscapes returns where the backslashes that escape the quote at text[j] start, back to
// s at the furthest: an unquoted value of escaped JSON (\"password\":null,\"a\":1) ends
// before them. It reads as many as escapedQuote does.
func beforeEscapes(text []byte, s, j int) int {
	for k := 0; k < 1<<maxQuoteDepth-1 && j > s && text[j-1] == '\\'; k++ {
		j--
	}
	return j
}

// beforeUQuote returns where the unquoted value text[s:e] of a key quoted as \u0022 ends:
// before the first \u0022 in it, which quotes the next key.
func beforeUQuote(text []byte, s, e int) int {
	if k := bytes.Index(text[s:e], []byte(uQuote)); k >= 0 {
		e = s + k
		for e > s && (text[e-1] == ' ' || text[e-1] == '\t' || text[e-1] == ',') {
			e--
		}
	}
	return e
}

// Escaped quotes. JSON held in a string (a log line printed from a string, a JSON log line
// whose field holds JSON, a document cut short so that it does not parse as one) quotes its
// keys and values with \", and with \\\" when held in a string twice, \\\\\\\" three times:
// a quote held d times in strings has 2^d-1 backslashes before it. Some encoders write the
// quote as \u0022 instead.
const (
	maxQuoteDepth = 3
	uQuote        = `\u0022`
)

// escapedQuote returns the quote q that text[i:] starts with escaped, the number run of
// backslashes before it (2^d-1 for a quote held d times in strings, d from 1 to
// maxQuoteDepth; 1 for \u0022) and the length n of the escaped quote; n is 0 when text[i:]
// does not start with one. A quote after a run of another length (JSON that is not valid,
// "password":\\\\\"x\\\\\") is read as the quote of the shortest run of 2^d-1 backslashes not
// shorter than it: it quotes the value all the same.
func escapedQuote(text []byte, i int) (q byte, run, n int) {
	k := i
	for k < len(text) && text[k] == '\\' && k-i < 1<<maxQuoteDepth {
		k++
	}
	n = k - i
	if k < len(text) && isQuote(text[k]) && 0 < n && n < 1<<maxQuoteDepth {
		return text[k], 1<<bits.Len(uint(n)) - 1, n + 1
	}
	if n == 1 && bytes.HasPrefix(text[k:], []byte(uQuote[1:])) {
		return '"', 1, len(uQuote)
	}
	return 0, 0, 0
}

// escapedValue returns the bounds of the value that starts at text[s], after the escaped
// quote q of run backslashes: it ends at the first q that is not part of the value, the
// escaped quote that closes it or a quote held fewer times in strings (that closes a string
// the value is in, which a value cut short leaves open), or at a line break. A q is part of
// the value when it is held more times in strings than the value's quote: the lowest bits of
// the number of backslashes before it, those of the value's run and one more, are all ones
// (\\\" in a value quoted with \"). An escaped backslash before the closing quote belongs to
// the value (\\\\\" closes a value that ends with one). A value of JSON held once in a
// string also ends at \u0022, unless escaped (\\\u0022).
//
// Each byte is read by one value of each kind of quote at most, however many separators come
// before it: a value ends before the next value quoted alike starts, as a value quoted with
// '"' (valueAfter) does.
func escapedValue(text []byte, s int, q byte, run int) (int, int) {
	mask := 2*run + 1
	b := 0 // backslashes before text[j]
	for j := s; j < len(text) && j-s < maxValueLen; j++ {
		switch c := text[j]; {
		case c == '\\':
			b++
			continue
		case c == q && b&mask != mask:
			return s, j - b&run
		case c == '\n':
			return s, j
		case c == 'u' && run == 1 && q == '"' && b&3 == 1 && bytes.HasPrefix(text[j+1:], []byte(uQuote[2:])):
			return s, j - 1
		}
		b = 0
	}
	return s, min(len(text), s+maxValueLen)
}

// nextIsAssignment reports whether the blanks at text[i] are followed by the end of the line or
// by a token that contains '=' or ':'.
func nextIsAssignment(text []byte, i int) bool {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
		i++
	}
	if i >= len(text) || text[i] == '\n' || text[i] == '\r' {
		return true
	}
	for ; i < len(text) && !isSpace(text[i]); i++ {
		if text[i] == '=' || text[i] == ':' {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix, ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := b[i]
		if isUpper(c) {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// firstWordEnd returns where the first word of the value text[s:e] ends: at its first blank,
// or after it when the value starts with one; the value is not empty.
func (r *valueReader) firstWordEnd(text []byte, s, e int) int {
	for j := s; ; j++ {
		if j = r.nextStop(text, j, e); j == e {
			return e
		}
		if c := text[j]; c == ' ' || c == '\t' {
			return max(j, s+1)
		}
	}
}

// entropy returns the entropy of text[s:e], as entropy(text[s:e]) does. A long value's is
// taken from the counts of the last long value's bytes, updated by the bytes the two values do
// not share; a short value's bytes are counted, as fast as its entropy is taken from counts.
func (r *valueReader) entropy(text []byte, s, e int) float64 {
	if e-s <= shortValue {
		return entropy(text[s:e])
	}
	if r.counts == nil {
		r.counts = new([256]int32)
		r.lo, r.hi = s, s
	} else if s < r.lo || s >= r.hi || s-r.lo+abs(e-r.hi) > e-s {
		// findAssignments asks for values in the order they start. A value that starts
		// before the last one or after its end, or that it costs more to move to than
		// to count, is counted afresh.
		*r.counts = [256]int32{}
		r.lo, r.hi = s, s
	}
	for ; r.lo < s; r.lo++ {
		r.counts[text[r.lo]]--
	}
	for ; r.hi < e; r.hi++ {
		r.counts[text[r.hi]]++
	}
	for r.hi > e {
		r.hi--
		r.counts[text[r.hi]]--
	}
	return entropyOf(r.counts, e-s)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
