// Package jsonlex scans JSON text without decoding it.
//
// It is the one JSON lexer of Gatehouse: the masking engine rewrites responses and audit events
// with it, the enricher decodes its batches and splits audit event streams with it, and the
// recorder writes JSON strings with it. Its functions work on a byte slice and an index into it:
// they return the index after what they scanned, never allocate, never panic on malformed input,
// and validate as they go (RFC 8259 syntax, nesting at most [MaxDepth] deep and, in [Strict]
// mode, UTF-8).
//
// Errors are [*SyntaxError] (an offset and what was expected there, never content) or [ErrEOF]
// when the input ends inside a value, so that stream readers can wait for more data. [Splitter]
// finds where a value ends in text that arrives in pieces. [Unescape] decodes a string's body,
// and [AppendQuoted] writes one, as encoding/json does.
package jsonlex
