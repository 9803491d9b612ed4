package masking

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
)

// Placeholder format. A masked value is replaced by
//
//	gatehouse:masked:<12 lower-case hex digits>
//
// where the digits are the first 6 bytes of HMAC-SHA256(key, value) under the operator's key.
// Secret data values, which must stay base64, are replaced by the standard base64 encoding of
// that text. The placeholder never depends on anything but the value and the key, so equal
// values get equal placeholders (within one key) and nothing about the length is revealed.
const (
	// PlaceholderPrefix starts every placeholder.
	PlaceholderPrefix = "gatehouse:masked:"
	hashBytes         = 6
	placeholderLen    = len(PlaceholderPrefix) + 2*hashBytes
)

var (
	placeholderPrefix = []byte(PlaceholderPrefix)
	// base64Prefix is how every base64-encoded placeholder starts: the encoding of the first
	// 15 bytes of the prefix, which base64 maps to whole characters.
	base64Prefix = []byte(base64.StdEncoding.EncodeToString(placeholderPrefix[:15]))
)

// ContainsPlaceholder reports whether b contains a placeholder, plain or base64-encoded.
// Admission control can use it to refuse writes that would store a placeholder in place of a
// secret (an object read through Gatehouse and applied back unchanged).
func ContainsPlaceholder(b []byte) bool {
	return bytes.Contains(b, placeholderPrefix) || bytes.Contains(b, base64Prefix)
}

// hasher computes placeholders. It is not safe for concurrent use; each walker owns one.
type hasher struct {
	mac hash.Hash
	sum []byte
	buf [placeholderLen]byte
}

func newHasher(key []byte) *hasher {
	return &hasher{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
}

// plain returns the placeholder text for value. The result is valid until the next call.
func (h *hasher) plain(value []byte) []byte {
	h.mac.Reset()
	h.mac.Write(value)
	h.sum = h.mac.Sum(h.sum[:0])
	n := copy(h.buf[:], placeholderPrefix)
	hex.Encode(h.buf[n:], h.sum[:hashBytes])
	return h.buf[:]
}

// appendPlain appends the placeholder for value to dst.
func (h *hasher) appendPlain(dst, value []byte) []byte {
	return append(dst, h.plain(value)...)
}

// isPlaceholder reports whether v is exactly a plain placeholder.
func isPlaceholder(v []byte) bool {
	if len(v) != placeholderLen || !bytes.HasPrefix(v, placeholderPrefix) {
		return false
	}
	for _, c := range v[len(placeholderPrefix):] {
		if !isDigit(c) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
