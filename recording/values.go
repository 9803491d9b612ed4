package recording

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
)

// Limits of a Values set.
const (
	// MinValueBytes is the shortest value a Values set keeps: shorter ones ("true", "admin")
	// would mask ordinary output everywhere.
	MinValueBytes = 6
	// MaxValueBytes is the longest single value (or line of a multi-line value) it keeps.
	MaxValueBytes = 64 << 10
	// MaxValues and MaxValuesBytes bound a set; past them the values added longest ago are
	// forgotten.
	MaxValues      = 256
	MaxValuesBytes = 1 << 20
)

// Values is the set of secret values one session has read (the data of the Secrets whose
// responses the proxy masked), each with the placeholder the masker gave it, so that the same
// values are masked when the session's commands print them (cat of a mounted Secret, env).
// Values of several lines are also kept line by line, as terminals show them.
//
// A Values set lives in memory only and is bounded (MaxValues, MaxValuesBytes): the values read
// longest ago go first, so that a Secret the session reads again stays. It never prints its
// values: String, GoString, Format and LogValue are redacted. It is safe for concurrent use.
type Values struct {
	mu sync.RWMutex
	// oldest and newest end the list of the values kept, in the order they were last added:
	// the order they are forgotten in.
	oldest, newest *value
	n, bytes       int               // how many values the list holds, and their size
	byHash         map[uint64]*value // the same, by the hash of the value, chained through next
	seed           maphash.Seed
	// hash hashes a value; nil means maphash under seed. A test seam: tests make every value
	// collide.
	hash func([]byte) uint64

	// sorted holds the same by decreasing length, so that a longer value wins over a value it
	// contains; Replace builds it when Add changed the set (nil). Adding values (a session that
	// reads a list of Secrets adds hundreds) is thus cheap, and only Replace sorts.
	sortMu sync.Mutex
	sorted []*value
}

type value struct {
	raw, placeholder []byte
	hash             uint64
	next             *value // the next value with the same hash
	older, newer     *value // the values added before and after it
}

// Add keeps v (and each line of it) with its placeholder as the newest value, unless it is too
// short or too long. A value already kept takes the new placeholder and becomes the newest.
func (s *Values) Add(v, placeholder []byte) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(v, placeholder)
	if bytes.IndexByte(v, '\n') >= 0 {
		for line := range bytes.SplitSeq(v, []byte("\n")) {
			s.add(bytes.TrimRight(line, "\r"), placeholder)
		}
	}
}

// keeps reports whether Add keeps v itself (not counting its lines), unless it is already kept.
func keeps(v []byte) bool {
	return len(v) <= MaxValueBytes && TrimmedAtLeast(v, MinValueBytes)
}

// TrimmedAtLeast reports whether bytes.TrimSpace(v) is at least n bytes long. Most values (text,
// and binary data) neither start nor end with a byte that can begin or end a white space
// character, and are not read through.
func TrimmedAtLeast(v []byte, n int) bool {
	if len(v) < n || len(v) == 0 {
		return len(v) >= n
	}
	if !canStartSpace(v[0]) && !canEndSpace(v[len(v)-1]) {
		return true
	}
	return len(bytes.TrimSpace(v)) >= n
}

// canStartSpace reports whether a white space character (unicode.IsSpace) can start with c: the
// ASCII spaces, and the lead bytes of U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F and U+3000.
func canStartSpace(c byte) bool {
	switch c {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xc2, 0xe1, 0xe2, 0xe3:
		return true
	}
	return false
}

// canEndSpace reports whether a white space character can end with c: the ASCII spaces, and the
// last bytes of the others.
func canEndSpace(c byte) bool {
	switch {
	case c == '\t', c == '\n', c == '\v', c == '\f', c == '\r', c == ' ':
		return true
	case c >= 0x80 && c <= 0x8a, c == 0x9f, c == 0xa0, c == 0xa8, c == 0xa9, c == 0xaf:
		return true
	}
	return false
}

func (s *Values) add(v, placeholder []byte) {
	if !keeps(v) {
		return
	}
	s.init()
	h := s.hashOf(v)
	if x := s.lookup(v, h); x != nil {
		s.again(x, placeholder)
		return
	}
	s.insert(v, placeholder, h)
	s.trim()
}

func (s *Values) init() {
	if s.byHash == nil {
		s.byHash = map[uint64]*value{}
		s.seed = maphash.MakeSeed()
	}
}

// insert keeps v, whose hash is h and which the set does not hold, with its placeholder, as the
// newest value. The caller trims the set.
func (s *Values) insert(v, placeholder []byte, h uint64) {
	// One allocation for the value and its placeholder.
	buf := make([]byte, len(v)+len(placeholder))
	copy(buf, v)
	copy(buf[len(v):], placeholder)
	nv := &value{raw: buf[:len(v):len(v)], placeholder: buf[len(v):], hash: h, next: s.byHash[h]}
	s.byHash[h] = nv
	s.push(nv)
}

// again makes x, which the set keeps, the newest value, with the placeholder ph.
func (s *Values) again(x *value, ph []byte) {
	if x != s.newest {
		s.remove(x)
		s.push(x)
	}
	if !bytes.Equal(x.placeholder, ph) {
		x.placeholder = bytes.Clone(ph)
	}
}

// push appends x to the list as the newest value.
func (s *Values) push(x *value) {
	x.older, x.newer = s.newest, nil
	if s.newest != nil {
		s.newest.newer = x
	} else {
		s.oldest = x
	}
	s.newest = x
	s.n++
	s.bytes += len(x.raw)
	s.sorted = nil
}

// remove takes x out of the list; byHash still holds it.
func (s *Values) remove(x *value) {
	if x.older != nil {
		x.older.newer = x.newer
	} else {
		s.oldest = x.newer
	}
	if x.newer != nil {
		x.newer.older = x.older
	} else {
		s.newest = x.older
	}
	x.older, x.newer = nil, nil
	s.n--
	s.bytes -= len(x.raw)
	s.sorted = nil
}

// trim forgets the oldest values past the set's bounds.
func (s *Values) trim() {
	for s.n > MaxValues || s.bytes > MaxValuesBytes {
		s.forget(s.oldest)
	}
}

// forget takes x out of the list and out of byHash.
func (s *Values) forget(x *value) {
	s.remove(x)
	s.unlink(x)
}

func (s *Values) hashOf(v []byte) uint64 {
	if s.hash != nil {
		return s.hash(v)
	}
	return maphash.Bytes(s.seed, v)
}

// lookup returns the kept value equal to v, whose hash is h, or nil.
func (s *Values) lookup(v []byte, h uint64) *value {
	for x := s.byHash[h]; x != nil; x = x.next {
		if bytes.Equal(x.raw, v) {
			return x
		}
	}
	return nil
}

// unlink removes old from byHash.
func (s *Values) unlink(old *value) {
	head := s.byHash[old.hash]
	if head == old {
		if old.next == nil {
			delete(s.byHash, old.hash)
		} else {
			s.byHash[old.hash] = old.next
		}
		return
	}
	for x := head; x != nil; x = x.next {
		if x.next == old {
			x.next = old.next
			return
		}
	}
}

// byLength returns the values kept by decreasing length. The caller holds s.mu for reading.
func (s *Values) byLength() []*value {
	s.sortMu.Lock()
	defer s.sortMu.Unlock()
	if s.sorted == nil {
		s.sorted = make([]*value, 0, s.n)
		for x := s.oldest; x != nil; x = x.newer {
			s.sorted = append(s.sorted, x)
		}
		slices.SortStableFunc(s.sorted, func(a, b *value) int { return len(b.raw) - len(a.raw) })
	}
	return s.sorted
}

// Contains reports whether v is kept.
func (s *Values) Contains(v []byte) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.byHash == nil {
		return false
	}
	return s.lookup(v, s.hashOf(v)) != nil
}

// Len returns the number of values kept.
func (s *Values) Len() int {
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.n
}

// Replace returns src with every kept value replaced by its placeholder, and how many it
// replaced: src itself when it replaced none, else a buffer of its own.
func (s *Values) Replace(src []byte) ([]byte, int) {
	if s == nil {
		return src, 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.n == 0 {
		return src, 0
	}
	cur := src
	n := 0
	for _, v := range s.byLength() {
		if len(cur) < len(v.raw) || !bytes.Contains(cur, v.raw) {
			continue
		}
		next := make([]byte, 0, len(cur))
		for {
			i := bytes.Index(cur, v.raw)
			if i < 0 {
				next = append(next, cur...)
				break
			}
			next = append(next, cur[:i]...)
			next = append(next, v.placeholder...)
			cur = cur[i+len(v.raw):]
			n++
		}
		cur = next
	}
	return cur, n
}

// String is redacted: a Values set never prints its values.
func (s *Values) String() string { return fmt.Sprintf("[%d redacted values]", s.Len()) }

// GoString is redacted.
func (s *Values) GoString() string { return s.String() }

// Format is redacted, whatever the verb.
func (s *Values) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }

// LogValue is redacted.
func (s *Values) LogValue() slog.Value { return slog.StringValue(s.String()) }
