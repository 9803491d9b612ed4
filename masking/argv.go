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
)

// errArgvEnd ends the words of a command at an element that is not one.
var errArgvEnd = errors.New("masking: not a word of a command")

// argvFinding is something the detectors found in the command line of an array, in the text of
// one of its words: text[start:end] of the word at index word.
type argvFinding struct {
	word, start, end, id int
}

// argvFindings reads the array whose first element is the string at src[i] as the words of a
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
	gate := w.argvGate[:0]
	gateWord := func(text []byte, blank bool) bool {
		if !blank || text[0] == '-' {
			gate = append(append(gate, text...), ' ')
		}
		return len(gate) <= maxArgvBytes
	}
	pre := 0
	if command >= 0 {
		pre = w.argvWords(command, gateWord)
	}
	n := w.argvWords(i, gateWord)
	w.argvGate = gate
	if pre+n < 2 || !w.m.eng.commandKeywords(gate, w.trig) {
		return nil
	}
	line := w.argvLine[:0]
	segs := w.argvSegs[:0]
	word, limit := -pre, -pre // the command's words are before the array's: what is found in them is theirs
	lineWord := func(text []byte, blank bool) bool {
		if word == limit {
			return false
		}
		if len(line) > 0 {
			line = append(line, ' ')
		}
		// A flag with its value (-p'pass word', --password='pass word') is written with the
		// value quoted, as people write it; another word with blanks is quoted whole.
		k := 0
		if blank && len(text) > 2 && text[0] == '-' {
			if eq := bytes.IndexByte(text, '='); eq > 0 {
				k = eq + 1
			} else if text[1] != '-' {
				k = 2
			}
		}
		if k > 0 {
			segs = append(segs, argvSeg{word: word, line: len(line), n: k})
			line = append(line, text[:k]...)
		}
		q := argvQuote(text[k:], blank)
		if q != 0 {
			line = append(line, q)
		}
		segs = append(segs, argvSeg{word: word, line: len(line), text: k, n: len(text) - k})
		line = append(line, text[k:]...)
		if q != 0 {
			line = append(line, q)
		}
		word++
		return true
	}
	if pre > 0 {
		limit = 0
		w.argvWords(command, lineWord)
	}
	limit = n
	w.argvWords(i, lineWord)
	w.argvLine, w.argvSegs = line, segs
	w.spans = w.m.eng.runTriggered(w, line, w.trig, w.spans[:0])
	if w.m.hasExemptions {
		w.spans = w.filterExempt(*c, w.spans)
	}
	found := w.argv[:0]
	k := 0
	for _, sp := range w.spans { // sorted by start, not overlapping
		for k < len(segs) && segs[k].line+segs[k].n <= sp.start {
			k++
		}
		for j := k; j < len(segs) && segs[j].line < sp.end; j++ {
			// Cut to the word, a finding may be no more than a placeholder of an earlier
			// pass: masking twice changes nothing.
			g := segs[j]
			s, e := max(sp.start, g.line), min(sp.end, g.line+g.n)
			if g.word >= 0 && s < e && !isPlaceholder(line[s:e]) {
				found = append(found, argvFinding{word: g.word, start: g.text + s - g.line, end: g.text + e - g.line, id: sp.id})
			}
		}
	}
	w.argv = found
	return found
}

// argvSeg is where a part of a word's text is in the command line of an array:
// line[line:line+n] is text[text:text+n] of the word at index word.
type argvSeg struct {
	word, line, text, n int
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
		case b == '"':
			var esc bool
			if end, esc, err = scanString(src, i); err == nil {
				text = w.text(i, end, esc)
			}
		case b == '-' || isDigit(b) || b == 't' || b == 'f' || b == 'n':
			if end, err = skipValue(src, i, 0); err == nil {
				text = src[i:end]
			}
		default:
			err = errArgvEnd
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

// argvQuote returns the quote a shell needs around a word whose text is text, which has blanks
// or not, to read it as one word, or 0 for none. Only blanks split a word: the rest is written
// as people write a command line ($(VAR), a glob, a ';'), which the detectors read. A word that
// no quote holds as it is (it has blanks and both kinds of quote, or blanks, a double quote and
// something a shell expands between double quotes) is written bare, as the words a shell would
// split it into.
func argvQuote(text []byte, blank bool) byte {
	switch {
	case len(text) == 0:
		return '\''
	case !blank:
		return 0
	case bytes.IndexByte(text, '\'') < 0:
		return '\''
	case !bytes.ContainsAny(text, "\"\\$`"):
		return '"'
	}
	return 0
}

// hasBlank reports whether text has a byte that splits shell words.
func hasBlank(text []byte) bool {
	for _, c := range text {
		if c <= ' ' && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
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
