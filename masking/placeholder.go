package masking

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math/bits"
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
	// base64PrefixBytes is the length of the part of the prefix that base64 maps to whole
	// characters: a multiple of 3.
	base64PrefixBytes = len(PlaceholderPrefix) / 3 * 3
)

var (
	placeholderPrefix = []byte(PlaceholderPrefix)
	// base64Prefix is how every base64-encoded placeholder starts: the encoding of the first
	// base64PrefixBytes (15) bytes of the prefix, which base64 maps to whole characters.
	base64Prefix = []byte(base64.StdEncoding.EncodeToString(placeholderPrefix[:base64PrefixBytes]))
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
	return h.format(h.digest(value))
}

// digest returns the bytes of value's placeholder: the first hashBytes of its HMAC.
func (h *hasher) digest(value []byte) [hashBytes]byte {
	h.mac.Reset()
	h.mac.Write(value)
	h.sum = h.mac.Sum(h.sum[:0])
	return [hashBytes]byte(h.sum)
}

// format returns the placeholder text of a digest. The result is valid until the next call.
func (h *hasher) format(d [hashBytes]byte) []byte {
	n := copy(h.buf[:], placeholderPrefix)
	hex.Encode(h.buf[n:], d[:])
	return h.buf[:]
}

// appendPlain appends the placeholder for value to dst.
func (h *hasher) appendPlain(dst, value []byte) []byte {
	return append(dst, h.plain(value)...)
}

// appendBase64Placeholder appends the standard base64 encoding of the placeholder of digest d
// to dst: base64Prefix, then the encoding of the rest of the prefix and the hex digits, which
// b64Digest holds for every group of three characters they make.
func appendBase64Placeholder(dst []byte, d [hashBytes]byte) []byte {
	dst = append(dst, base64Prefix...)
	t := b64Digest
	x := uint64(d[0])<<40 | uint64(d[1])<<32 | uint64(d[2])<<24 | uint64(d[3])<<16 | uint64(d[4])<<8 | uint64(d[5])
	dst = append(dst, t.first[x>>44][:]...)
	dst = append(dst, t.triple[x>>32&0xfff][:]...)
	dst = append(dst, t.triple[x>>20&0xfff][:]...)
	dst = append(dst, t.triple[x>>8&0xfff][:]...)
	return append(dst, t.last[x&0xff][:]...)
}

// b64DigestTable holds the four base64 characters of each group of three characters that can
// follow base64Prefix in a placeholder.
type b64DigestTable struct {
	first  [1 << 4][4]byte
	triple [1 << 12][4]byte
	last   [1 << 8][4]byte
}

// b64Digest holds the base64 of what follows base64Prefix in a placeholder, by the hex digits
// of the digest: the rest of the prefix (two characters) and the first digit make the first
// group of three characters, the next nine digits three more, and the last two the padded last
// group.
var b64Digest = func() *b64DigestTable {
	const digits = "0123456789abcdef"
	rest := PlaceholderPrefix[base64PrefixBytes:]
	if len(rest) != 2 || 2*hashBytes != 1+3*3+2 {
		panic("masking: the placeholder format changed; b64Digest does not fit it")
	}
	t := new(b64DigestTable)
	for x := range t.first {
		base64.StdEncoding.Encode(t.first[x][:], []byte(rest+digits[x:x+1]))
	}
	for x := range t.triple {
		base64.StdEncoding.Encode(t.triple[x][:], []byte{digits[x>>8], digits[x>>4&15], digits[x&15]})
	}
	for x := range t.last {
		base64.StdEncoding.Encode(t.last[x][:], []byte{digits[x>>4], digits[x&15]})
	}
	return t
}()

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

// hideMemo remembers the placeholders of the strings a walker hid in the document it works on,
// by where the strings are in it, so that a value that recurs through a list (the CA bundle of
// every service account token Secret, a username) is hashed once (it is still decoded, for the
// SecretValue hook and to find where its base64 ends). It is
// direct-mapped: a string's slot follows from its length, its first and last eight bytes and
// the mode it is hidden in, and a slot answers for a string of the same document with the same
// bytes, hidden in the same mode. A slot holds no secret: the position of a string and the
// digest of its placeholder, which the client sees. None outlives its document: walker.reset
// starts a new generation, and a slot of another generation is empty.
type hideMemo struct {
	gen   uint32
	slots [hideMemoSlots]hideMemoSlot
}

const (
	hideMemoBits  = 8
	hideMemoSlots = 1 << hideMemoBits
)

type hideMemoSlot struct {
	gen      uint32
	start, n int      // the string's body: src[start:start+n]
	mode     hideMode // the mode it was hidden in
	out      hideMode // the mode hiddenValue chose for it
	ok       bool     // hiddenValue's verdict: false for a placeholder, which is kept
	digest   [hashBytes]byte
}

// next starts a new generation: every slot is empty.
func (m *hideMemo) next() {
	if m.gen++; m.gen == 0 {
		m.slots = [hideMemoSlots]hideMemoSlot{}
		m.gen = 1
	}
}

// slot returns the slot of the string body src[start:start+n] hidden in mode, and whether it
// holds that string.
func (m *hideMemo) slot(src []byte, start, n int, mode hideMode) (*hideMemoSlot, bool) {
	raw := src[start : start+n]
	var a, b uint64
	if n >= 8 {
		a = binary.LittleEndian.Uint64(raw)
		b = binary.LittleEndian.Uint64(raw[n-8:])
	} else {
		for i, c := range raw {
			a |= uint64(c) << (8 * i)
		}
		b = a
	}
	h := (a ^ bits.RotateLeft64(b, 29) ^ uint64(n)<<2 ^ uint64(mode)) * 0x9e3779b97f4a7c15
	s := &m.slots[h>>(64-hideMemoBits)]
	hit := s.gen == m.gen && s.n == n && s.mode == mode &&
		(s.start == start || bytes.Equal(src[s.start:s.start+n], raw))
	return s, hit
}
