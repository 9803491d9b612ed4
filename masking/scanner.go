package masking

import (
	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// This file is the engine's view of package jsonlex, the lexer its rewriters are built on: the
// same primitives, in Strict mode, with jsonlex's errors turned into ErrMalformed (errEOF when
// the input ends inside a value, so that stream readers can wait for more data).

// maxDepth bounds the nesting of arrays and objects, as encoding/json does.
const maxDepth = jsonlex.MaxDepth

// lexError is an error of package jsonlex as the engine reports it: an ErrMalformed with the
// same message. A value, so that the wrappers below stay small enough to be inlined.
type lexError struct{ err error }

func (e lexError) Error() string {
	if e.err == jsonlex.ErrEOF {
		return errEOF.Error()
	}
	return ErrMalformed.Error() + ": " + e.err.Error()
}

// Is reports that the error is an ErrMalformed.
func (e lexError) Is(target error) bool { return target == ErrMalformed }

// Unwrap returns the jsonlex error.
func (e lexError) Unwrap() error { return e.err }

func isSpace(c byte) bool { return jsonlex.IsSpace(c) }

func isDigit(c byte) bool { return jsonlex.IsDigit(c) }

func skipSpace(src []byte, i int) int { return jsonlex.SkipSpace(src, i) }

// scanString scans the string starting at src[i], which must be '"'. It returns the index just
// after the closing quote and whether the string contains escape sequences.
func scanString(src []byte, i int) (end int, esc bool, err error) {
	end, esc, err = jsonlex.Strict.ScanString(src, i)
	if err != nil {
		err = lexError{err}
	}
	return end, esc, err
}

// scanNumber scans the number starting at src[i].
func scanNumber(src []byte, i int) (end int, err error) {
	end, err = jsonlex.ScanNumber(src, i)
	if err != nil {
		err = lexError{err}
	}
	return end, err
}

// scanLiteral scans true, false or null starting at src[i].
func scanLiteral(src []byte, i int) (end int, err error) {
	end, err = jsonlex.ScanLiteral(src, i)
	if err != nil {
		err = lexError{err}
	}
	return end, err
}

// skipValue validates and skips the value starting at src[i] (no leading whitespace).
func skipValue(src []byte, i, depth int) (end int, err error) {
	end, err = jsonlex.Strict.SkipValue(src, i, depth)
	if err != nil {
		err = lexError{err}
	}
	return end, err
}

// scanKey scans the object key at src[i] and the colon after it. It returns the index just
// after the key's closing quote and the index of the value.
func scanKey(src []byte, i int) (keyEnd, value int, err error) {
	keyEnd, value, err = jsonlex.Strict.ScanKey(src, i)
	if err != nil {
		err = lexError{err}
	}
	return keyEnd, value, err
}

// next consumes the separator after a member or element. It returns the index of the next
// member, or the negated index just after the closing byte when the container ends.
func next(src []byte, i int, closing byte) (j int, err error) {
	var more bool
	if j, more, err = jsonlex.Next(src, i, closing); !more {
		if err != nil {
			return j, lexError{err}
		}
		j = -j
	}
	return j, nil
}

// unescape appends the text of the JSON string body raw (without quotes, already validated by
// scanString) to dst. Invalid surrogates become U+FFFD, as in encoding/json.
func unescape(dst, raw []byte) []byte { return jsonlex.Unescape(dst, raw) }

// appendQuoted appends s as a JSON string, escaped like encoding/json does it (HTML-safe, with
// U+2028 and U+2029 escaped and invalid UTF-8 replaced by U+FFFD).
func appendQuoted(dst, s []byte) []byte { return jsonlex.AppendQuoted(dst, s) }

// appendEscaped appends s escaped as the body of a JSON string, as appendQuoted does.
func appendEscaped(dst, s []byte) []byte { return jsonlex.AppendEscaped(dst, s) }
