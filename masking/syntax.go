package masking

import "bytes"

// This file lets the walker skip the detectors on strings of a fixed syntax that no detector's
// keyword can occur in: the values kube-apiserver writes into every object's metadata
// (resourceVersion, uid, creationTimestamp, managedFields times) and that make up a good part of
// the strings of a list. The decision rests on the value alone, never on the field's name: a
// credential written into metadata.uid (an audit event's requestObject holds what the client
// sent) does not have the syntax, and is searched like any string. For a syntax no keyword fits in
// (the engine works that out from its keywords when it is built: syntaxClean) the keyword scan
// is not run; for the others (a uid can spell "acdb" or "4b1d") noFindings runs it and passes over
// the string only when it finds no keyword. The detectors without keywords still run on the
// value.

// fixedSyntax names a syntax the walker recognises.
type fixedSyntax uint8

const (
	synNone    fixedSyntax = iota
	synDecimal             // 1 to 20 decimal digits: resourceVersion, generation as a string
	synUUID                // 8-4-4-4-12 lower-case hex digits: uid
	synTime                // RFC 3339 in UTC, seconds or fractions: creationTimestamp, managedFields[].time
	numSyntaxes
)

const (
	maxDecimalLen  = 20
	uuidLen        = 36
	timeLen        = len("2006-01-02T15:04:05Z")
	maxFractionLen = 9
)

// syntaxOf returns the fixed syntax s has, or synNone.
func syntaxOf(s []byte) fixedSyntax {
	switch n := len(s); {
	case n == 0:
		return synNone
	case isDigit(s[0]) && n <= maxDecimalLen && allDigits(s):
		return synDecimal
	case n == uuidLen && isUUID(s):
		return synUUID
	case n >= timeLen && isUTCTime(s):
		return synTime
	}
	return synNone
}

func allDigits(s []byte) bool {
	for _, c := range s {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// isUUID reports whether s, of uuidLen bytes, is 8-4-4-4-12 lower-case hex digits: its dashes,
// then its five groups, each by hexLower.
func isUUID(s []byte) bool {
	if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	return allOf(s[:8], hexLower) && allOf(s[9:13], hexLower) && allOf(s[14:18], hexLower) &&
		allOf(s[19:23], hexLower) && allOf(s[24:], hexLower)
}

// isUTCTime reports 2006-01-02T15:04:05Z and 2006-01-02T15:04:05.999999999Z.
func isUTCTime(s []byte) bool {
	const layout = "dddd-dd-ddTdd:dd:dd"
	for i := range len(layout) {
		if l := layout[i]; (l == 'd' && !isDigit(s[i])) || (l != 'd' && s[i] != l) {
			return false
		}
	}
	rest := s[len(layout):]
	if len(rest) > 1 {
		if rest[0] != '.' || len(rest) < 3 || len(rest) > maxFractionLen+2 || !allDigits(rest[1:len(rest)-1]) {
			return false
		}
	}
	return rest[len(rest)-1] == 'Z'
}

// syntaxTemplates lists, for each syntax, the shapes of its strings: at each position the bytes
// (lower-cased, as the prefilter folds them) that can occur there. A run of digits of any length
// up to a bound is covered by its longest template, since a keyword that fits a shorter one fits
// the longest too.
func syntaxTemplates(s fixedSyntax) [][]string {
	const digit, hex = "0123456789", "0123456789abcdef"
	rep := func(set string, n int) []string {
		t := make([]string, n)
		for i := range t {
			t[i] = set
		}
		return t
	}
	lit := func(s string) []string {
		t := make([]string, len(s))
		for i := range s {
			t[i] = s[i : i+1]
		}
		return t
	}
	cat := func(parts ...[]string) []string {
		var t []string
		for _, p := range parts {
			t = append(t, p...)
		}
		return t
	}
	switch s {
	case synDecimal:
		return [][]string{rep(digit, maxDecimalLen)}
	case synUUID:
		return [][]string{cat(rep(hex, 8), lit("-"), rep(hex, 4), lit("-"), rep(hex, 4), lit("-"), rep(hex, 4), lit("-"), rep(hex, 12))}
	case synTime:
		date := cat(rep(digit, 4), lit("-"), rep(digit, 2), lit("-"), rep(digit, 2), lit("t"),
			rep(digit, 2), lit(":"), rep(digit, 2), lit(":"), rep(digit, 2))
		return [][]string{
			cat(date, lit("z")),
			cat(date, lit("."), rep(digit, maxFractionLen), lit("z")),
		}
	}
	return nil
}

// fitsTemplate reports whether keyword (lower case) occurs in some string of the template.
func fitsTemplate(keyword string, t []string) bool {
	for off := 0; off+len(keyword) <= len(t); off++ {
		fits := true
		for j := 0; j < len(keyword) && fits; j++ {
			fits = containsByte(t[off+j], keyword[j])
		}
		if fits {
			return true
		}
	}
	return false
}

func containsByte(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// syntaxClean works out, for each syntax, whether no string of it can hold a keyword of
// keywords (lower case, as the prefilter matches them): then the prefilter finds nothing in it,
// and of the detectors only those without keywords (engine.always) run.
func syntaxClean(keywords []string) (clean [numSyntaxes]bool) {
	for s := synDecimal; s < numSyntaxes; s++ {
		clean[s] = true
		for _, k := range keywords {
			for _, t := range syntaxTemplates(s) {
				if fitsTemplate(k, t) {
					clean[s] = false
				}
			}
		}
	}
	return clean
}

// noFindings reports whether the detectors find nothing in text, deciding it on text's syntax
// where it can: in a string of a clean syntax only the detectors without keywords can find
// anything, and they are run here as find would run them, unless the text holds none of the
// bytes they need (engine.needs; a uid or a decimal cannot, a time only the dot of its
// fraction). In a string of a syntax that is not clean (a uid can hold "00d" or "4b1d",
// keywords of credential formats) the keyword scan tells whether one is there, and without
// one it is the same. It returns false when that is not known, and then find must run. text
// must not hold the start of a nested document ({ or [), which none of the syntaxes has;
// w.trig is left zero.
func (e *engine) noFindings(w *walker, text []byte) bool {
	syn := syntaxOf(text)
	if syn == synNone || !e.bySyntax {
		return false
	}
	if !e.clean[syn] && e.ac.scan(text, w.trig) {
		clear(w.trig)
		return false
	}
	if e.stop != nil && !e.syntaxHasNeeded(syn, text) {
		// Every detector without keywords needs one of these bytes (newStops).
		return true
	}
	for _, id := range e.always {
		if w.spans = e.dets[id].run(w, text, w.spans[:0]); len(w.spans) > 0 {
			return false
		}
	}
	return true
}

// syntaxHasNeeded reports whether text, of the syntax syn, holds a byte a detector without
// keywords needs (engine.needs, set when engine.stop is): only those the syntax's strings can
// hold are looked for.
func (e *engine) syntaxHasNeeded(syn fixedSyntax, text []byte) bool {
	for i := 0; i < len(e.needs); i++ {
		if c := e.needs[i]; syntaxByte(syn, c) && bytes.IndexByte(text, c) >= 0 {
			return true
		}
	}
	return false
}

// syntaxByte reports whether a string of the syntax s (syntaxOf) can hold the byte c; for
// synNone, any byte.
func syntaxByte(s fixedSyntax, c byte) bool {
	switch s {
	case synDecimal:
		return isDigit(c)
	case synUUID:
		return isDigit(c) || ('a' <= c && c <= 'f') || c == '-'
	case synTime:
		return isDigit(c) || c == '-' || c == ':' || c == 'T' || c == '.' || c == 'Z'
	}
	return true
}
