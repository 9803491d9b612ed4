package masking

import (
	"encoding/base64"
	"encoding/binary"
)

// This file holds the decoding of standard base64 (Secret data): the engine decodes every value
// of every Secret it masks, to compute its placeholder and to hand it to the SecretValue hook.
// The fast path decodes eight characters at a time with one look-up per pair of characters (a
// 128 KiB table) and one test for all eight; from the first group of eight with anything but alphabet characters in it (padding,
// line breaks, invalid bytes) encoding/base64 decodes the rest, so that the result and every
// error are encoding/base64's own.

// b64Values maps a byte to its value in the standard alphabet, or to 0xff outside it.
var b64Values = func() (t [256]uint8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for c := range t {
		t[c] = 0xff
	}
	for v := range len(alphabet) {
		t[alphabet[v]] = uint8(v)
	}
	return t
}()

// b64Pairs maps two bytes (the first in the low byte) to the 12 bits they decode to, or to
// 0xffff when either is outside the alphabet.
var b64Pairs = func() *[1 << 16]uint16 {
	t := new([1 << 16]uint16)
	for i := range t {
		a, b := b64Values[byte(i)], b64Values[byte(i>>8)]
		if a|b >= 64 {
			t[i] = 0xffff
		} else {
			t[i] = uint16(a)<<6 | uint16(b)
		}
	}
	return t
}()

// decodeBase64Std decodes src, standard base64, into dst, which must hold
// base64.StdEncoding.DecodedLen(len(src)) bytes and 2 more. It returns what
// base64.StdEncoding.Decode(dst, src) returns and leaves the same bytes in dst[:n].
func decodeBase64Std(dst, src []byte) (int, error) {
	return decodeBase64StdFrom(dst, src, 0, 0)
}

// decodeBase64StdFrom is decodeBase64Std with src[:i] already decoded into dst[:n] by
// decodeGroups (i is a multiple of 8, n is i/8*6).
func decodeBase64StdFrom(dst, src []byte, i, n int) (int, error) {
	if len(dst) >= base64.StdEncoding.DecodedLen(len(src))+2 {
		dn, di := decodeGroups(dst[n:], src[i:])
		n, i = n+dn, i+di
	}
	m, err := base64.StdEncoding.Decode(dst[n:], src[i:])
	if ce, ok := err.(base64.CorruptInputError); ok {
		err = ce + base64.CorruptInputError(i)
	}
	return n + m, err
}

// decodeGroups decodes src into dst a group of eight characters at a time, six bytes each (and
// two more, which the next group overwrites), as long as the group has alphabet characters only
// and both have room for it. It returns the bytes decoded and the characters read.
func decodeGroups(dst, src []byte) (n, k int) {
	t := b64Pairs
	for len(src)-k >= 8 && len(dst)-n >= 8 {
		w := binary.LittleEndian.Uint64(src[k:])
		p0, p1, p2, p3 := t[uint16(w)], t[uint16(w>>16)], t[uint16(w>>32)], t[uint16(w>>48)]
		if (p0|p1|p2|p3)&0xf000 != 0 {
			break
		}
		binary.BigEndian.PutUint64(dst[n:], uint64(p0)<<52|uint64(p1)<<40|uint64(p2)<<28|uint64(p3)<<16)
		n += 6
		k += 8
	}
	return n, k
}
