package masking

import (
	"bytes"
	"errors"
	"slices"
)

// This file holds the reading of an array of strings as the words of a command: a container's
// command and args, an exec probe's command, a Job's args. A password that a command takes as
// a plain argument (mysql -pS3cret, sshpass -p S3cret, redis-cli -a S3cret, htpasswd -b file
// user S3cret) is found in a command line by what comes before it; written as an array, each
// word is a string of its own, and none of them, read alone, shows that. So the words are
// joined into the line a shell would have split them from, the detectors read that line, and
// what they find in a word is masked in that word, along with what its own text shows.

// Bounds of the command an array makes: the words past them are read one by one only.
const (
	maxArgvWords = 256
	maxArgvBytes = 64 << 10 // of its words without blanks
	maxArgvWord  = 4 << 10  // a longer word is written as a stand-in (argvLine.add)
)

// isWordStart reports whether b starts a JSON value that is a word of a command: a string, a
// number, true, false or null.
func isWordStart(b byte) bool {
	return b == '"' || b == '-' || isDigit(b) || b == 't' || b == 'f' || b == 'n'
}

// errArgvEnd ends the words of a command at an element that is not one.
var errArgvEnd = errors.New("masking: not a word of a command")

// argvFinding is something the detectors found in the command line of an array, in the text of
// one of its words: text[start:end] of the word at index word.
type argvFinding struct {
	word, start, end, id int
}

// argvFindings reads the array whose first element is the word at src[i] as the words of a
// command, after those of the array whose first element is at src[command] when command is not
// -1 (a container's command, when the array is its args), in context c (that of its elements),
// and returns what the detectors of commands find in the array's words of the line the words
// make, by word and in order. Numbers, true, false and null are words as written; an object or
// an array ends the command. It finds nothing in a command of fewer than two words. The result
// is valid until the next call.
//
// A detector of commands runs when its keyword is in a word without blanks or in a flag: a
// word with blanks (a script for sh -c) is read by the detectors on its own, and a keyword in
// it does not start a command whose words follow in the array. So those words are read first,
// and the line is made only for an array in which they hold such a keyword.
func (w *walker) argvFindings(command, i int, c *vctx) []argvFinding {
	l := &w.argvArray
	l.reset()
	pre := 0
	if command >= 0 {
		pre = w.argvWords(command, l.gateWord)
	}
	n := w.argvWords(i, l.gateWord)
	if pre+n < 2 || !w.m.eng.commandKeywords(l.gate, w.trig) {
		return nil
	}
	word, limit := -pre, 0 // the command's words come first: what is found in them is theirs
	add := func(text []byte, blank bool) bool {
		if word == limit {
			return false
		}
		l.add(word, text, blank)
		word++
		return true
	}
	if pre > 0 {
		w.argvWords(command, add)
	}
	limit = n
	w.argvWords(i, add)
	w.spans = w.m.eng.runTriggered(w, l.line, w.trig, w.spans[:0])
	if w.m.hasExemptions {
		w.spans = w.filterExempt(*c, w.spans)
	}
	found := w.argv[:0]
	l.each(w.spans, func(word, start, end, id int) {
		found = append(found, argvFinding{word: word, start: start, end: end, id: id})
	})
	w.argv = found
	return found
}

// argvLine is the command line words make: the line, and where each word's text is in it; and
// the words that may start a command, for the keyword scan.
type argvLine struct {
	line, gate []byte
	segs       []argvSeg
}

// argvSeg is where a part of a word's text is in the command line: line[line:line+n] is
// text[text:text+n] of the word numbered word.
type argvSeg struct {
	word, line, text, n int
}

func (l *argvLine) reset() {
	l.line, l.gate, l.segs = l.line[:0], l.gate[:0], l.segs[:0]
}

// forget clears the last line, which may hold a password, for a walker going back to the pool.
func (l *argvLine) forget() {
	clear(l.line)
	clear(l.gate)
	l.reset()
}

// gateWord adds text, a word with blanks or not, to the words that may start a command: a word
// without blanks, or a flag with its value. It reports whether there is room for more.
func (l *argvLine) gateWord(text []byte, blank bool) bool {
	switch {
	case len(text) > maxArgvWord:
		l.gate = append(l.gate, "_ "...)
	case !blank || text[0] == '-':
		l.gate = append(append(l.gate, text...), ' ')
	}
	return len(l.gate) <= maxArgvBytes
}

// add appends the word numbered word, whose text is text, with blanks or not, to the line. No
// shell splits the words of an array, so a word is written as one word a shell would read
// (appendWord), in quotes when it has blanks; a flag with its value (-p'pass word',
// --password='pass word') with its value quoted, as people write it. A word longer than
// maxArgvWord is written as a stand-in in which the detectors find nothing: it is masked as
// text on its own.
func (l *argvLine) add(word int, text []byte, blank bool) {
	if len(l.line) > 0 {
		l.line = append(l.line, ' ')
	}
	if len(text) > maxArgvWord {
		l.line = append(l.line, '_')
		return
	}
	k := 0
	if blank && len(text) > 2 && text[0] == '-' {
		if eq := bytes.IndexByte(text, '='); eq > 0 {
			k = eq + 1
		} else if text[1] != '-' {
			k = 2
		}
	}
	if k > 0 {
		l.segs = append(l.segs, argvSeg{word: word, line: len(l.line), n: k})
		l.line = appendWord(l.line, text[:k], text)
	}
	quote := blank || len(text) == 0
	if quote {
		l.line = append(l.line, '\'')
	}
	l.segs = append(l.segs, argvSeg{word: word, line: len(l.line), text: k, n: len(text) - k})
	l.line = appendWord(l.line, text[k:], text)
	if quote {
		l.line = append(l.line, '\'')
	}
}

// appendWord appends part, a part of the word text, to dst with the same length, as a shell
// reads one word: the bytes a shell reads as syntax (quotes, a backslash, a backquote,
// ; & | < > #, the parentheses of a word without $(…)) are written as '_', the control bytes
// as blanks or '_'. What is left is what the detectors read: the word's letters, its $(VAR)
// references. A word that is an operator (;, |, &&), which someone wrote as if a shell read
// the array, stays one.
func appendWord(dst, part, text []byte) []byte {
	switch string(text) {
	case ";", "|", "||", "&", "&&", "|&":
		return append(dst, part...) // a shell's operator, written as a word of its own
	}
	subst := bytes.Contains(text, []byte("$("))
	for _, c := range part {
		switch c {
		case '\t', '\n', '\r', '\f', '\v':
			c = ' '
		case '\'', '"', '\\', '`', ';', '&', '|', '<', '>', '#', 0x7f:
			c = '_'
		case '(', ')':
			if !subst {
				c = '_'
			}
		default:
			if c < 0x20 {
				c = '_'
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// each calls fn with what spans, found in the line, cover of each word numbered from 0: its
// text[start:end]. A span cut to a word may be no more than a placeholder of an earlier pass,
// which fn is not called with: masking twice changes nothing.
func (l *argvLine) each(spans []span, fn func(word, start, end, id int)) {
	segs, k := l.segs, 0
	for _, sp := range spans { // sorted by start, not overlapping
		for k < len(segs) && segs[k].line+segs[k].n <= sp.start {
			k++
		}
		for j := k; j < len(segs) && segs[j].line < sp.end; j++ {
			g := segs[j]
			s, e := max(sp.start, g.line), min(sp.end, g.line+g.n)
			if g.word >= 0 && s < e && !isPlaceholder(l.line[s:e]) {
				fn(g.word, g.text+s-g.line, g.text+e-g.line, sp.id)
			}
		}
	}
}

// argvWords calls each with the text of each word of the command whose first word is the string
// at src[i], and whether it has blanks, until each returns false, and returns the number of
// words it was called with. The text is valid during the call.
func (w *walker) argvWords(i int, each func(text []byte, blank bool) bool) int {
	src := w.src
	n := 0
	for ; n < maxArgvWords && i < len(src); n++ {
		var text []byte
		var end int
		var err error
		switch b := src[i]; {
		case !isWordStart(b):
			err = errArgvEnd
		case b == '"':
			var esc bool
			if end, esc, err = scanString(src, i); err == nil {
				text = w.text(i, end, esc)
			}
		default:
			if end, err = skipValue(src, i, 0); err == nil {
				text = src[i:end]
			}
		}
		if err != nil || !each(text, hasBlank(text)) {
			break // a malformed element is the walk's to report
		}
		if i, err = next(src, end, ']'); err != nil || i < 0 {
			return n + 1
		}
	}
	return n
}

// hasBlank reports whether text has a byte that splits shell words.
func hasBlank(text []byte) bool {
	for _, c := range text {
		if c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
			return true
		}
	}
	return false
}

// withArgvFindings merges what the detectors found in the command line of an array in one of
// its words into the edits of the word's text, which are sorted and do not overlap. Where a
// finding overlaps an edit, both give way to one placeholder over them.
func withArgvFindings(edits []textEdit, found []argvFinding) []textEdit {
	for _, f := range found {
		edits = append(edits, textEdit{start: f.start, end: f.end, id: f.id, rs: -1})
	}
	slices.SortStableFunc(edits, func(a, b textEdit) int { return a.start - b.start })
	out := edits[:0]
	for _, e := range edits {
		if n := len(out); n > 0 && e.start < out[n-1].end {
			last := &out[n-1]
			last.end = max(last.end, e.end)
			if last.rs >= 0 {
				last.id, last.rs, last.re = e.id, -1, 0
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// findYAMLCommands finds what the detectors of commands find in the commands written in text as
// YAML sequences of words, and appends it under their IDs: a flow sequence on one line
// (command: [mysql, -uroot, -pS3cret]) or a block of items, one a line ("- -pS3cret"). The
// sequence of an args key is read after that of the command key of the same mapping before it.
func findYAMLCommands(w *walker, text []byte, spans []span) []span {
	if w == nil || !mayHoldYAMLSequence(text) {
		return spans
	}
	l := &w.argvText
	if w.argvTrig == nil {
		w.argvTrig = make([]uint64, w.m.eng.words)
	}
	w.yamlItems, w.yamlCommand, w.yamlArgs = yamlSequences(text, w.yamlItems[:0], w.yamlCommand[:0], w.yamlArgs[:0], func(pre, items []yamlItem) {
		// The words read, within the bounds of an array's (maxArgvWords, maxArgvBytes).
		l.reset()
		n := 0
	gate:
		for _, seq := range [2][]yamlItem{pre, items} {
			for _, it := range seq {
				word := text[it.start:it.end]
				if n == maxArgvWords || !l.gateWord(word, hasBlank(word)) {
					break gate
				}
				n++
			}
		}
		if n < 2 || !w.m.eng.commandKeywords(l.gate, w.argvTrig) {
			return
		}
		pre = pre[:min(n, len(pre))]
		items = items[:n-len(pre)]
		for k, it := range pre {
			word := text[it.start:it.end]
			l.add(k-len(pre), word, hasBlank(word))
		}
		for k, it := range items {
			word := text[it.start:it.end]
			l.add(k, word, hasBlank(word))
		}
		w.argvSpans = w.m.eng.runTriggered(w, l.line, w.argvTrig, w.argvSpans[:0])
		l.each(w.argvSpans, func(word, start, end, id int) {
			s := items[word].start
			spans = append(spans, span{s + start, s + end, id})
		})
	})
	return spans
}

// mayHoldYAMLSequence reports whether text may hold a YAML sequence under a key: a key whose
// value is on the next lines, or a flow sequence.
func mayHoldYAMLSequence(text []byte) bool {
	return bytes.Contains(text, []byte(":\n")) || bytes.Contains(text, []byte(": [")) || bytes.Contains(text, []byte(":\r\n"))
}

// yamlItem is a word of a YAML sequence in a text: text[start:end], inside its quotes.
type yamlItem struct{ start, end int }

// yamlSequences calls each with the items of each sequence of words (strings, numbers, true,
// false, null) that text holds as YAML under a key, and with pre, the items of the sequence of
// the command key of the same mapping, when the sequence is that of its args key (once, in
// either order of the keys; the args are then read again after the command). A key may start a
// list item (- command:). A sequence with another item (a mapping, a sequence, an alias, a block
// scalar, an empty item) is not one. items, command and args are scratch, returned for reuse.
func yamlSequences(text []byte, items, command, args []yamlItem, each func(pre, items []yamlItem)) ([]yamlItem, []yamlItem, []yamlItem) {
	commandCol, argsCol := -1, -1 // the columns of the keys whose sequences command and args hold
	var key []byte                // the key of the line before, when its value follows on the next lines
	keyCol := -1
	report := func(key []byte, col int, items []yamlItem) {
		switch string(key) {
		case "command":
			each(nil, items)
			if col == argsCol {
				each(items, args)
				argsCol = -1
			} else {
				command, commandCol = append(command[:0], items...), col
			}
		case "args":
			if col == commandCol {
				each(command, items)
				commandCol = -1
			} else {
				each(nil, items)
				args, argsCol = append(args[:0], items...), col
			}
		default:
			each(nil, items)
		}
	}
	for pos := 0; pos < len(text); {
		ls, le := pos, yamlLineEnd(text, pos)
		pos = le + 1
		if blankLine(text[ls:le]) {
			continue
		}
		col := 0
		for text[ls+col] == ' ' {
			col++
		}
		body := bytes.TrimRight(text[ls+col:le], " \t\r")
		if col < commandCol {
			commandCol = -1 // another mapping
		}
		if col < argsCol {
			argsCol = -1
		}
		if body[0] == '-' && (len(body) == 1 || body[1] == ' ') {
			if rest := bytes.TrimLeft(body[1:], " "); yamlKeyLine(rest) {
				// A list item that is a mapping: its first key.
				col += len(body) - len(rest)
				body = rest
			} else {
				// A block sequence: this item and those after it at its column, blank lines
				// and comments between them.
				items = items[:0]
				words := true
				end := le
				for q := ls; q < len(text); {
					qe := yamlLineEnd(text, q)
					if blankLine(text[q:qe]) {
						q = qe + 1
						continue
					}
					qc := q + col
					if qc >= qe || !onlyBlanks(text[q:qc]) || text[qc] != '-' || qc+1 < qe && text[qc+1] != ' ' && text[qc+1] != '\r' {
						break // not an item at this column
					}
					s, e, ok := yamlScalar(text, qc+1, qe)
					words = words && ok
					items = append(items, yamlItem{s, e})
					end, q = qe, qe+1
				}
				pos = end + 1
				if words && keyCol >= 0 && keyCol <= col {
					report(key, keyCol, items)
				}
				key, keyCol = nil, -1
				continue
			}
		}
		key, keyCol = nil, -1
		if !yamlKeyLine(body) {
			continue
		}
		k := bytes.IndexByte(body, ':')
		value := bytes.TrimLeft(body[k+1:], " ")
		switch {
		case len(value) == 0:
			key, keyCol = body[:k], col
		case value[0] == '[':
			// A flow sequence on one line.
			vs := ls + col + len(body) - len(value)
			if e := bytes.IndexByte(value, ']'); e > 0 {
				items = items[:0]
				if yamlFlowItems(text, vs+1, vs+e, &items) {
					report(body[:k], col, items)
				}
			}
		}
	}
	return items, command, args
}

// yamlKeyLine reports whether a line's text (from its first byte that is not a blank) is a
// key and its value: a plain key, then ':' at the end or before a blank.
func yamlKeyLine(body []byte) bool {
	k := bytes.IndexByte(body, ':')
	return k > 0 && body[0] != '"' && body[0] != '\'' && (k+1 == len(body) || body[k+1] == ' ')
}

// yamlLineEnd returns the index of the end of the line at text[start]: its newline, or the end
// of text.
func yamlLineEnd(text []byte, start int) int {
	if k := bytes.IndexByte(text[start:], '\n'); k >= 0 {
		return start + k
	}
	return len(text)
}

// yamlFlowItems appends the items of the flow sequence text[s:e] (between its brackets) to
// items, and reports whether it has items and they are all words.
func yamlFlowItems(text []byte, s, e int, items *[]yamlItem) bool {
	for i := s; ; {
		j := i
		for j < e && text[j] != ',' {
			if c := text[j]; c == '\'' || c == '"' {
				k := bytes.IndexByte(text[j+1:e], c)
				if k < 0 {
					return false
				}
				j += k + 1
			}
			j++
		}
		is, ie, ok := yamlScalar(text, i, j)
		if !ok {
			return false
		}
		*items = append(*items, yamlItem{is, ie})
		if j >= e {
			return true
		}
		i = j + 1
	}
}

// yamlScalar returns the bounds of the text of the scalar text[s:e] (blanks around it, a
// comment after it), inside its quotes, and whether it is a word: not empty, and not a mapping,
// a collection, an alias or a block scalar.
func yamlScalar(text []byte, s, e int) (int, int, bool) {
	for s < e && text[s] == ' ' {
		s++
	}
	for e > s && (text[e-1] == ' ' || text[e-1] == '\r' || text[e-1] == '\t') {
		e--
	}
	if s == e {
		return s, e, false
	}
	switch c := text[s]; c {
	case '\'', '"':
		k := bytes.IndexByte(text[s+1:e], c)
		if k < 0 || s+1+k != e-1 {
			return s, e, false // a quote that does not end the scalar
		}
		return s + 1, e - 1, true
	case '{', '[', '&', '*', '!', '|', '>', '%', '@', '`', '#':
		return s, e, false
	}
	if k := bytes.Index(text[s:e], []byte(" #")); k >= 0 {
		e = s + k
		for e > s && text[e-1] == ' ' {
			e--
		}
	}
	if text[e-1] == ':' || bytes.Contains(text[s:e], []byte(": ")) {
		return s, e, false // a mapping
	}
	return s, e, true
}

func onlyBlanks(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

// blankLine reports whether a line is blank or a comment, which a block sequence may hold.
func blankLine(line []byte) bool {
	t := bytes.TrimLeft(line, " \t\r")
	return len(t) == 0 || t[0] == '#'
}
