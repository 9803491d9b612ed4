package masking

import "bytes"

// This file holds the finders of passwords that commands take as plain arguments: a
// positional one (htpasswd -b file user password), the value of a flag (openssl -k password)
// and the value after a key word (rclone config create name type pass password). They read a
// command as a shell splits it into words, from its name to its end, where an expression could
// not count positional arguments or find several secrets in one command.

// cmdWord is a word of a command: text[start:end] as written. Its value, which a finder checks
// and masks, is text[vs:ve]: inside the quotes of a word quoted whole ('…', "…", or \"…\" in a
// string that escapes its quotes), else the whole word.
type cmdWord struct {
	start, end int
	vs, ve     int
}

// raw returns the word as written.
func (w cmdWord) raw(text []byte) []byte { return text[w.start:w.end] }

// value returns the word's value.
func (w cmdWord) value(text []byte) []byte { return text[w.vs:w.ve] }

// isFlag reports whether the word is written as a flag: a dash and more.
func (w cmdWord) isFlag(text []byte) bool { return w.end-w.start >= 2 && text[w.start] == '-' }

// wordReader reads the words of one command, up to its end: a newline that is not escaped, an
// operator (; & | or the ')' that closes a subshell or a command substitution), a comment, or a
// quote that is not closed on its line. Redirections (2>/dev/null, <<<word) are not words.
// Each byte is read once, or twice for a word quoted whole.
type wordReader struct {
	text []byte
	pos  int // where the next word is looked for; the command's end when done
	done bool
	// subst is where the first command substitution ($(…) or `…`) in the words read so far
	// starts, or -1.
	subst int
}

func newWordReader(text []byte, pos int) wordReader {
	return wordReader{text: text, pos: pos, subst: -1}
}

// next returns the next word of the command, or false at its end.
func (r *wordReader) next() (cmdWord, bool) {
	text := r.text
	for !r.done {
		i := skipBlanks(text, r.pos)
		r.pos = i
		if i >= len(text) {
			r.done = true
			break
		}
		switch c := text[i]; {
		case c == '&' && i+1 < len(text) && text[i+1] == '>', c == '<', c == '>', isDigit(c) && redirectsAfterDigits(text, i):
			r.pos = r.skipRedirect(i)
			continue
		case c == '\n', c == '\r', c == ';', c == '&', c == '|', c == ')', c == '#':
			r.done = true
			continue
		}
		w := r.word(i)
		if w.end == w.start {
			r.done = true // an unclosed quote
			break
		}
		r.pos = w.end
		return w, true
	}
	return cmdWord{}, false
}

// end reads the rest of the command and returns where it ends.
func (r *wordReader) end() int {
	for _, ok := r.next(); ok; _, ok = r.next() {
	}
	return r.pos
}

// word reads the word at text[i]. A word in a command substitution runs to its ')', blanks and
// all; a quote that is not closed on its line ends the word and the command.
func (r *wordReader) word(i int) cmdWord {
	text := r.text
	depth := 0 // of $( … ) and ( … ) inside one
	j := i
loop:
	for j < len(text) {
		switch c := text[j]; c {
		case '\n', '\r':
			break loop
		case ' ', '\t', ';', '&', '|', '<', '>':
			if depth == 0 {
				break loop
			}
			j++
		case ')':
			if depth == 0 {
				break loop
			}
			depth--
			j++
		case '(':
			if depth > 0 {
				depth++
			}
			j++
		case '$':
			if j+1 < len(text) && text[j+1] == '(' {
				if r.subst < 0 {
					r.subst = j
				}
				depth++
				j++
			}
			j++
		case '\\':
			switch {
			case j+1 < len(text) && text[j+1] == '\n':
				break loop // a continuation
			case j+1 < len(text) && text[j+1] == '"':
				// \"…\" quotes in a string that escapes its quotes (sh -c "… \"pass word\"").
				k := closingEscapedQuote(text, j+2)
				if k < 0 {
					r.done = true // the end of the string
					break loop
				}
				r.noteSubst(text, j+2, k)
				j = k + 2
			default:
				j += 2
			}
		case '\'', '"', '`':
			k := closingQuote(text, j)
			if k < 0 {
				r.done = true
				break loop
			}
			switch c {
			case '`':
				r.noteSubst(text, j, j+1)
			case '"':
				r.noteSubst(text, j+1, k)
			}
			j = k + 1
		default:
			j++
		}
	}
	j = min(j, len(text))
	vs, ve := unquoted(text, i, j)
	return cmdWord{start: i, end: j, vs: vs, ve: ve}
}

// noteSubst notes the first command substitution in text[s:e] ($(…) or `…`), if it is the
// first of the command.
func (r *wordReader) noteSubst(text []byte, s, e int) {
	if r.subst >= 0 {
		return
	}
	if k := bytes.Index(text[s:e], []byte("$(")); k >= 0 {
		e = s + k
		r.subst = e
	}
	if k := bytes.IndexByte(text[s:e], '`'); k >= 0 {
		r.subst = s + k
	}
}

// skipRedirect returns the end of the redirection at text[i] and of its target.
func (r *wordReader) skipRedirect(i int) int {
	text := r.text
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	if i < len(text) && text[i] == '&' {
		i++ // &>file
	}
	for i < len(text) && (text[i] == '<' || text[i] == '>') {
		i++
	}
	if i < len(text) && (text[i] == '&' || text[i] == '|') {
		i++ // 2>&1, >|file
	}
	i = skipBlanks(text, i)
	if i >= len(text) {
		return i
	}
	switch text[i] {
	case '\n', '\r', ';', '&', '|', ')', '<', '>':
		return i
	}
	return r.word(i).end
}

// redirectsAfterDigits reports whether the digits at text[i] are the descriptor of a
// redirection (2>/dev/null).
func redirectsAfterDigits(text []byte, i int) bool {
	for i < len(text) && isDigit(text[i]) {
		i++
	}
	return i < len(text) && (text[i] == '<' || text[i] == '>')
}

// skipBlanks returns the index of the first byte from text[i] on that is not a blank or a
// line continued with a backslash.
func skipBlanks(text []byte, i int) int {
	for i < len(text) {
		switch {
		case text[i] == ' ' || text[i] == '\t':
			i++
		case text[i] == '\\' && i+1 < len(text) && text[i+1] == '\n':
			i += 2
		case text[i] == '\\' && i+2 < len(text) && text[i+1] == '\r' && text[i+2] == '\n':
			i += 3
		default:
			return i
		}
	}
	return i
}

// closingQuote returns the index of the quote that closes the one at text[i] on its line, or
// -1: a double quote or a backquote may be escaped inside.
func closingQuote(text []byte, i int) int {
	q := text[i]
	for j := i + 1; j < len(text); j++ {
		switch text[j] {
		case q:
			return j
		case '\n':
			return -1
		case '\\':
			if q != '\'' {
				j++
			}
		}
	}
	return -1
}

// closingEscapedQuote returns the index of the first \" from text[i] on on its line, or -1.
func closingEscapedQuote(text []byte, i int) int {
	for j := i; j+1 < len(text); j++ {
		switch text[j] {
		case '\n':
			return -1
		case '\\':
			if text[j+1] == '"' {
				return j
			}
			j++
		}
	}
	return -1
}

// unquoted returns the bounds of the value of text[s:e]: inside its quotes when it is quoted
// whole ('…', "…", \"…\"), else s and e.
func unquoted(text []byte, s, e int) (int, int) {
	switch {
	case e-s >= 2 && (text[s] == '\'' || text[s] == '"') && closingQuote(text, s) == e-1:
		return s + 1, e - 1
	case e-s >= 4 && text[s] == '\\' && text[s+1] == '"' && text[e-2] == '\\' && text[e-1] == '"' &&
		!bytes.Contains(text[s+2:e-2], []byte(`\"`)):
		return s + 2, e - 2
	}
	return s, e
}

// isCommandStart reports whether a command's name may start at text[i]: at the start of the
// text or of a line, after a blank, an operator, a path, a quote, a backquote or the '=' of a
// flag whose value is a command.
func isCommandStart(text []byte, i int) bool {
	if i == 0 {
		return true
	}
	switch text[i-1] {
	case ' ', '\t', '\n', '\r', ';', '|', '&', '(', '/', '\'', '"', '`', '=':
		return true
	}
	return false
}

// maxSubstDepth is how deep findCommands reads commands in the command substitutions of
// commands it reads: a byte is read by that many commands and one more at most.
const maxSubstDepth = 4

// findCommands calls each on the commands named name in text (isCommandStart, and a blank
// after the name), with a reader of their arguments, and returns the spans it appends. A
// command in a command substitution of one (rclone config create … pass $(rclone obscure …))
// is read too.
func findCommands(text []byte, name string, spans []span, each func(r *wordReader, spans []span) []span) []span {
	var ends [maxSubstDepth]int // the ends of the commands whose substitutions are being read
	depth := 0
	for off := 0; off < len(text); {
		k := bytes.Index(text[off:], []byte(name))
		if k < 0 {
			break
		}
		p := off + k
		off = p + len(name)
		for depth > 0 && ends[depth-1] <= p {
			depth--
		}
		if !isCommandStart(text, p) || skipBlanks(text, off) == off {
			continue
		}
		r := newWordReader(text, off)
		spans = each(&r, spans)
		end := r.end()
		if r.subst >= 0 && depth < len(ends) {
			ends[depth] = end
			depth++
			off = r.subst + 1
		} else {
			off = max(off, end)
		}
	}
	return spans
}

// notCommandReference reports whether a word's value may be a password: not empty, not a
// reference ($PW, ${PW}, $(cat file), `cat file`, or "$(cat "$f")", which wordReader reads
// with its quotes) and not a flag.
func notCommandReference(v []byte) bool {
	if len(v) == 0 || v[0] == '`' || v[0] == '-' {
		return false
	}
	if v[0] == '"' && len(v) > 2 && v[1] == '$' {
		v = v[1:]
	}
	return notReference(v)
}

// onlyExpansion reports whether a word's value, inside double quotes or not, is one shell
// expansion and nothing else: a parameter ($pw, $1, ${PW}, ${p:-x}) or a command ($(cat f),
// `cat f`). What the command gets is then not what the text shows, and a finder does not
// mask it. A value with literal text besides ("pass:${PW}x", pw$x, P@ss$word1, Pa$$w0rd) is
// masked: it may be a password with a '$' in it, and its text is.
func onlyExpansion(v []byte) bool {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if len(v) < 2 {
		return false
	}
	if v[0] == '`' {
		return closingQuote(v, 0) == len(v)-1
	}
	if v[0] != '$' {
		return false
	}
	switch n := v[1]; {
	case n == '{':
		return bytes.IndexByte(v, '}') == len(v)-1
	case n == '(':
		depth := 0
		for i, c := range v[1:] {
			switch c {
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					return i+1 == len(v)-1
				}
			}
		}
		return false
	case isDigit(n):
		return len(v) == 2
	}
	for _, c := range v[1:] {
		if !isLower(c) && !isUpper(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return !isDigit(v[1])
}

// passwordLike reports whether the value of a word a command takes as its password looks like
// one, where the position alone names it (htpasswd -b f user password, openssl -k password):
// not a placeholder of usage text ([-C cost], <file>, {password}, file..., file…, PASSWORD,
// YOUR_SECRET_KEY), and with a byte that
// is not a letter or at least 16 bytes long. Prose and usage text put words there too ("use
// htpasswd -b when you want to", "the -k option is deprecated"); a password that is a
// short word of letters alone is left to the rules that know its name, unless shaped: the
// command's shape says it is one (its end or a flag follows the password).
func passwordLike(v []byte, shaped bool) bool {
	if len(v) == 0 || v[0] == '[' || v[len(v)-1] == ']' || v[0] == '<' && v[len(v)-1] == '>' || v[0] == '{' && v[len(v)-1] == '}' ||
		bytes.HasSuffix(v, []byte("...")) || bytes.Contains(v, []byte("…")) {
		return false
	}
	if placeholderWord(v) {
		return false
	}
	if shaped || len(v) >= 16 {
		return true
	}
	for _, c := range v {
		if !isLower(c) && !isUpper(c) {
			return true
		}
	}
	return false
}

// commandPassword reports whether word w, whose value is text[vs:ve], holds a password a
// finder masks: not a reference, a flag or one expansion, not a parenthesis of prose
// ("… admin (restarting)"; a quoted "(Pa55" is a password), and like a password (shaped, as
// passwordLike reads it).
func commandPassword(text []byte, w cmdWord, vs, ve int, shaped bool) bool {
	v := text[vs:ve]
	if len(v) == 0 || v[0] == '(' && (vs == 0 || text[vs-1] != '\'' && text[vs-1] != '"') {
		return false
	}
	return notCommandReference(v) && !onlyExpansion(v) && passwordLike(v, shaped)
}

// placeholderWord reports whether v is a word of upper-case letters and underscores
// (PASSWORD, SECRET_KEY, YOUR_PASSWORD), which usage text and documentation put where a
// password goes; one of lower-case letters is a password only where a command's shape says so.
func placeholderWord(v []byte) bool {
	for _, c := range v {
		if !isUpper(c) && c != '_' {
			return false
		}
	}
	return true
}

// endsAfter reads the next word of r and reports whether the command ends there, at the end
// of the text or of its line or before an operator (; & |), redirections skipped: a command
// and not prose, which goes on, or a ')' or comment that prose may put there too.
func endsAfter(r *wordReader) bool {
	_, ok := r.next()
	return !ok && atCommandEnd(r)
}

// atCommandEnd reports whether r, done, stopped at the end of the text or of a line or
// before an operator (; & |).
func atCommandEnd(r *wordReader) bool {
	if r.pos >= len(r.text) {
		return true
	}
	switch r.text[r.pos] {
	case '\n', '\r', ';', '&', '|':
		return true
	}
	return false
}

// findHtpasswd finds the password htpasswd takes as its last argument after -b: htpasswd -b
// file user password, htpasswd -nb user password, with other flags (-B, -c, -C cost) in any
// grouping. Its options are read as apr_getopt reads them, up to the first word that is not
// one; when they hold no -b, a later group of options starts over, as in docker run
// --entrypoint htpasswd httpd:2 -Bbn user password.
func findHtpasswd(text []byte, spans []span) []span {
	return findCommands(text, "htpasswd", spans, func(r *wordReader, spans []span) []span {
		batch, noFile, options := false, false, true
		positional := 0
		for {
			w, ok := r.next()
			if !ok {
				return spans
			}
			raw := w.raw(r.text)
			if w.isFlag(r.text) && (options || !batch) {
				if !options {
					batch, noFile, options = false, false, true // a later group of options
				}
				if string(raw) == "--" {
					options = false
					continue
				}
				if htpasswdOptions(raw, &batch, &noFile) {
					r.next() // the value of -C or -r
				}
				continue
			}
			options = false
			if !batch {
				continue
			}
			// The file (unless -n), the user, then the password.
			before := 2
			if noFile {
				before = 1
			}
			if positional < before {
				positional++
				continue
			}
			if commandPassword(r.text, w, w.vs, w.ve, endsAfter(r)) {
				spans = append(spans, span{w.vs, w.ve, idHtpasswd})
			}
			return spans
		}
	})
}

// htpasswdOptions reads a group of htpasswd's options (-bnB), noting -b and -n, and reports
// whether the group's last option takes the next word as its value (-C 10, -r 5).
func htpasswdOptions(group []byte, batch, noFile *bool) bool {
	for i := 1; i < len(group); i++ {
		switch group[i] {
		case 'b':
			*batch = true
		case 'n':
			*noFile = true
		case 'C', 'r':
			return i == len(group)-1
		}
	}
	return false
}

// findOpenSSL finds the passwords of openssl's -k password and -pass, -passin and -passout
// pass:password, with the value in the next word or after '=' (-k=password); the other
// sources of a password (env:VAR, file:path, fd:3, stdin) name where it is.
func findOpenSSL(text []byte, spans []span) []span {
	return findCommands(text, "openssl", spans, func(r *wordReader, spans []span) []span {
		w, ok := r.next()
		for ok {
			raw := w.raw(r.text)
			if !w.isFlag(r.text) {
				w, ok = r.next()
				continue
			}
			flag := raw
			eq := bytes.IndexByte(raw, '=')
			if eq >= 0 {
				flag = raw[:eq]
			}
			flag = bytes.TrimPrefix(flag[1:], []byte("-"))
			var prefix string
			switch string(flag) {
			case "k":
			case "pass", "passin", "passout":
				prefix = "pass:"
			default:
				w, ok = r.next()
				continue
			}
			// The value: the rest of this word after '=', or the next word.
			var vs, ve int
			if eq >= 0 {
				vs, ve = unquoted(r.text, w.start+eq+1, w.end)
			} else {
				if w, ok = r.next(); !ok || w.isFlag(r.text) {
					continue
				}
				vs, ve = w.vs, w.ve
			}
			// The value is shaped when a flag or the command's end follows it.
			next, nok := r.next()
			shaped := nok && next.isFlag(r.text) || !nok && atCommandEnd(r)
			if bytes.HasPrefix(r.text[vs:ve], []byte(prefix)) {
				vs, ve = unquoted(r.text, vs+len(prefix), ve)
				if commandPassword(r.text, w, vs, ve, shaped) {
					spans = append(spans, span{vs, ve, idOpenSSL})
				}
			}
			w, ok = next, nok
		}
		return spans
	})
}

// findRclone finds the secrets of rclone config create name type key value … (and config
// update and config password, which take no type): the value after a key that names a secret,
// as the keyword rules classify it (pass, password, secret_access_key, client_secret, token),
// or after key, the key of B2 and Azure Blob. It finds the password of rclone obscure password
// too.
func findRclone(text []byte, spans []span) []span {
	return findCommands(text, "rclone", spans, func(r *wordReader, spans []span) []span {
		// The subcommand: the first word that is not a flag or, after a flag, its value.
		afterFlag, obscure := false, false
	subcommand:
		for {
			w, ok := r.next()
			if !ok {
				return spans
			}
			switch raw := w.raw(r.text); {
			case w.isFlag(r.text):
				afterFlag = bytes.IndexByte(raw, '=') < 0
			case string(raw) == "config":
				break subcommand
			case string(raw) == "obscure":
				obscure = true
				break subcommand
			case afterFlag:
				afterFlag = false
			default:
				return spans
			}
		}
		if obscure {
			return rcloneObscure(r, spans)
		}
		// config create NAME TYPE, config update NAME, config password NAME.
		for names := -1; names != 0; {
			w, ok := r.next()
			if !ok {
				return spans
			}
			if w.isFlag(r.text) {
				continue
			}
			switch raw := w.raw(r.text); {
			case names > 0:
				names--
			case string(raw) == "create":
				names = 2
			case string(raw) == "update", string(raw) == "password":
				names = 1
			default:
				return spans
			}
		}
		// Key value pairs. Each word that names a secret masks the next, wherever the pairs
		// start: a flag's value among them would shift them.
		var key []byte
		for {
			w, ok := r.next()
			if !ok {
				return spans
			}
			if w.isFlag(r.text) {
				key = nil
				continue
			}
			if key != nil {
				c := keySecret
				if string(key) != "key" {
					c = classifyKey(key)
				}
				if v := w.value(r.text); notCommandReference(v) && !onlyExpansion(v) && keyMasks(c, key, v) >= 0 {
					spans = append(spans, span{w.vs, w.ve, idRclone})
				}
			}
			key = nil
			if raw := w.raw(r.text); string(raw) == "key" || bytes.IndexByte(raw, '=') < 0 && classifyKey(raw) != keyPlain {
				key = raw
			}
		}
	})
}

// rcloneObscure finds the password of rclone obscure password.
func rcloneObscure(r *wordReader, spans []span) []span {
	for {
		w, ok := r.next()
		if !ok {
			return spans
		}
		if w.isFlag(r.text) {
			continue
		}
		if commandPassword(r.text, w, w.vs, w.ve, endsAfter(r)) {
			spans = append(spans, span{w.vs, w.ve, idRclone})
		}
		return spans
	}
}

// findPasswordStdin finds the password echo or printf writes into a command that reads it
// from its standard input (echo pw | docker login --password-stdin), and the one given to
// such a command as a here-string (docker login --password-stdin <<< pw).
func findPasswordStdin(text []byte, spans []span) []span {
	spans = findCommands(text, "echo", spans, func(r *wordReader, spans []span) []span {
		return pipedPassword(r, spans, false)
	})
	spans = findCommands(text, "printf", spans, func(r *wordReader, spans []span) []span {
		return pipedPassword(r, spans, true)
	})
	return findHereStrings(text, spans)
}

// pipedPassword reads the words of echo (printf when printf) after its flags (-n, -e; --
// and a format that starts with '%'), up to the end of the command, and returns spans with
// them appended as one when a pipe follows and the command after it holds --password-stdin
// (or --password-stdin=true).
func pipedPassword(r *wordReader, spans []span, printf bool) []span {
	text := r.text
	var first, last cmdWord
	n := 0
	dashes, format, expands := !printf, !printf, false // printf's -- and format are read
	for w, ok := r.next(); ok; w, ok = r.next() {
		raw := w.raw(text)
		if n == 0 {
			switch {
			case !printf && len(raw) >= 2 && raw[0] == '-' && len(bytes.Trim(raw[1:], "neE")) == 0:
				continue
			case !dashes && string(raw) == "--":
				dashes = true
				continue
			case !format && bytes.HasPrefix(w.value(text), []byte("%")):
				dashes, format = true, true
				continue
			}
			first = w
		}
		dashes, format = true, true
		last = w
		n++
		expands = expands || onlyExpansion(w.value(text))
	}
	// A pipe, then a command that reads the password from its standard input (after ||, the
	// reader finds no words).
	if n == 0 || expands || r.pos >= len(text) || text[r.pos] != '|' {
		return spans
	}
	stdin := false
	pr := newWordReader(text, r.pos+1)
	for w, ok := pr.next(); ok && !stdin; w, ok = pr.next() {
		raw := w.raw(text)
		stdin = string(raw) == "--password-stdin" || bytes.HasPrefix(raw, []byte("--password-stdin="))
	}
	if !stdin {
		return spans
	}
	vs, ve := first.start, last.end
	if n == 1 {
		vs, ve = first.vs, first.ve
	}
	if notCommandReference(text[vs:ve]) {
		spans = append(spans, span{vs, ve, idPasswordStdin})
	}
	return spans
}

// findHereStrings finds the words given as here-strings (<<< pw) to commands that hold
// --password-stdin, between the same operators or line ends.
func findHereStrings(text []byte, spans []span) []span {
	for off := 0; off < len(text); {
		k := bytes.Index(text[off:], []byte("<<<"))
		if k < 0 {
			break
		}
		p := off + k
		s := off + bytes.LastIndexAny(text[off:p], "\n;&|") + 1
		e := len(text)
		if i := bytes.IndexAny(text[p:], "\n;&|"); i >= 0 {
			e = p + i
		}
		off = e + 1
		seg := text[s:e]
		if !bytes.Contains(seg, []byte(" --password-stdin")) && !bytes.Contains(seg, []byte("\t--password-stdin")) {
			continue
		}
		// Each word is read within the segment, and the next here-string is looked for after
		// it: a word that runs on ($( … without its ')') would else be read again from each
		// <<< in it.
		for q := p; ; {
			next := q + 3
			r := newWordReader(text[:e], skipBlanks(text[:e], q+3))
			if i := r.pos; i < e && text[i] != '<' && text[i] != '>' {
				w := r.word(i)
				if w.end > w.start && notCommandReference(w.value(text)) && !onlyExpansion(w.value(text)) {
					spans = append(spans, span{w.vs, w.ve, idPasswordStdin})
				}
				next = max(next, w.end)
			}
			i := bytes.Index(text[next:e], []byte("<<<"))
			if i < 0 {
				break
			}
			q = next + i
		}
	}
	return spans
}
