package masking

import (
	"errors"
	"fmt"
)

// ErrUnmaskable is returned for content the engine cannot rewrite structurally: Kubernetes
// protobuf (application/vnd.kubernetes.protobuf), CBOR (application/cbor), YAML, content
// encodings other than gzip, and unknown content types of responses that may carry secrets. The
// caller must not forward such a body; the front proxy avoids it by asking the API server for
// JSON (see the package documentation).
var ErrUnmaskable = errors.New("masking: content cannot be masked")

// ErrMalformed is returned when content that must be masked cannot be parsed: truncated or
// invalid JSON, invalid UTF-8, trailing data, a corrupt gzip stream. Nothing of such content is
// passed through. Error messages carry an offset at most, never content bytes.
var ErrMalformed = errors.New("masking: malformed content")

// ErrTooLarge is returned when content exceeds a limit of [Limits]: a decompressed body, a JSON
// body read whole by [Masker.Stream], or a single watch event. Callers treat it like
// [ErrMalformed].
var ErrTooLarge = errors.New("masking: content too large")

// ErrInvalidConfig is returned by [New] and [LoadConfig] for an unusable configuration. Its
// messages never include key material.
var ErrInvalidConfig = errors.New("masking: invalid configuration")

// errEOF reports input that ended inside a JSON value. Streams use it to wait for more data;
// everywhere else it is an ErrMalformed.
var errEOF = fmt.Errorf("%w: unexpected end of input", ErrMalformed)

// malformed returns an ErrMalformed that names an offset and what was expected there.
func malformed(off int, what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, what, off)
}
