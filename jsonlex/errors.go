package jsonlex

import (
	"errors"
	"strconv"
)

// ErrSyntax is wrapped by every [*SyntaxError].
var ErrSyntax = errors.New("jsonlex: invalid JSON")

// ErrEOF is returned when the input ends inside a value. A stream reader waits for more input;
// for input that is complete it is a syntax error like any other.
var ErrEOF = errors.New("jsonlex: unexpected end of input")

// SyntaxError reports invalid JSON: what was expected and where. It never holds input bytes.
type SyntaxError struct {
	Offset int    // index into the scanned slice
	Msg    string // what is wrong there, e.g. "invalid escape"
}

func (e *SyntaxError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Unwrap returns ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

func syntaxError(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}
