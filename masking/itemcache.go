package masking

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// This file holds the memory of how the items of lists were masked. Clients read the same
// objects again and again (an agent polling a list, kubectl get after kubectl apply), and an
// object that did not change is the same bytes in every response, masked to the same bytes.
// The cache keeps, for the bytes of a run of consecutive items in one scope (the type the list
// gives its items and the rest of the walker's state an item's masking depends on, the same
// state a list's second half is masked in: fork.go), what masking did to them: where it
// replaced what by which placeholder, the IDs of the masked fields and the budget it spent.
//
// It keeps only what a client was sent: keyed hashes of the items' bytes (maphash, with seeds no
// one outside the process knows), and the bytes that replaced parts of them: placeholders, or a
// string rewritten around its placeholders (a last-applied annotation, a Helm release), never a
// value masking hid. A run is taken from the cache only when its length, the hash of its first
// bytes and the hash of all its bytes match one masked before in the same scope, so a changed
// byte anywhere in it (a new password in a ConfigMap, a new resourceVersion) masks it anew. A
// Secret's values, which the Target's SecretValue hook receives, are not kept either: the entry
// says where in the run each one is (in the run's bytes, or in the document its last-applied
// annotation holds) and what its placeholder was, and a run taken from the cache passes the
// values read from its own bytes again. A run whose masking passes the hook a value from
// anywhere else (an exempt value, a Helm release, a document nested deeper) is not kept.
//
// Looking a run up hashes the bytes of the entries its first bytes select (other versions of the
// same objects), whatever their length; a document may spend at most twice its own length so
// (walker.lookups), so that lists crafted to select large entries again and again cost linear
// time.

// DefaultItemCacheBytes is the default of Limits.ItemCacheBytes.
const DefaultItemCacheBytes = 32 << 20

const (
	// itemShards is the number of independently locked parts of the cache.
	itemShards = 16
	// itemPrefix is the number of bytes at a run's start that select its entries: its first
	// object's opening, which names it and, as the API server writes it, its version
	// (`{"metadata":{"name":"web","namespace":"prod","uid":"…","resourceVersion":"81",…`), so
	// that the entries of other versions of the object are not hashed in vain.
	itemPrefix = 256
	// itemHead is the number of bytes at an item's start whose hash says whether a run ends
	// with it.
	itemHead = 64
	// maxItemChain bounds the entries one prefix selects (versions of one object), so that a
	// lookup hashes a run at most that many times.
	maxItemChain = 4
	// maxItemScopes bounds the scopes the cache tells apart; lists of other scopes are not
	// cached.
	maxItemScopes = 1024
	// itemEntryOverhead is what an entry costs besides its replacements, IDs and values: the
	// struct, its slices' headers and its share of a map.
	itemEntryOverhead = 192
)

// itemCache remembers how runs of list items were masked. It is safe for concurrent use.
type itemCache struct {
	seeds    [2]maphash.Seed
	shardMax int64 // bytes a shard's current generation holds before it becomes the old one

	mu     sync.Mutex
	scopes map[string]uint32

	shards [itemShards]itemShard

	hits, misses atomic.Int64
	hashed       atomic.Int64 // bytes lookups hashed, for tests
}

// ItemCacheStats says how the cache of masked list items did since the Masker was created.
type ItemCacheStats struct {
	// Hits and Misses count the runs of list items taken from the cache and masked.
	Hits, Misses int64
	// Bytes is what the cache holds now, by its own accounting; MaxBytes what it may hold
	// (Limits.ItemCacheBytes).
	Bytes, MaxBytes int64
}

// ItemCacheStats returns the statistics of the Masker's cache of masked list items; all zero
// when the cache is off.
func (m *Masker) ItemCacheStats() ItemCacheStats {
	c := m.items
	if c == nil {
		return ItemCacheStats{}
	}
	st := ItemCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), MaxBytes: c.shardMax * 2 * itemShards}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Bytes += s.bytes + s.oldBytes
		s.mu.Unlock()
	}
	return st
}

// itemShard holds two generations of entries: lookups find both, new and found entries go into
// the current one, and when it is full it replaces the old one, which is dropped. What was not
// used during a generation is forgotten, at a cost of one map a generation.
type itemShard struct {
	mu       sync.Mutex
	cur, old map[itemKey]*itemEntry
	bytes    int64 // of cur
	oldBytes int64 // of old, when it became old
}

type itemKey struct {
	scope  uint32
	prefix uint64
}

// itemEntry is how one run of items was masked. It is not changed once it is in the cache.
type itemEntry struct {
	next   *itemEntry // another run with the same key
	n      int        // length of the run's bytes, from its first item's start to its last's end
	sum    uint64     // keyed hash of the run's bytes
	edits  []itemEdit // the replacements, in order
	repl   []byte     // their bytes, one after the other
	log    []int32    // IDs of the masked fields
	budget int        // what masking spent of walker.budget
	vals   []itemValue
}

// itemEdit is one replacement: n bytes of the run from off on became the next r bytes of
// itemEntry.repl.
type itemEdit struct {
	off, n, r int32
}

// itemValue is where the run holds a value that masking passed to the SecretValue hook: the
// string at [off, off+n) of the run, read in mode, and the digest of its placeholder. A value
// of the document a last-applied annotation holds is at [off, off+n) of the annotation's text,
// which is the string at [in.off, in.off+in.n) of the run.
type itemValue struct {
	off, n int
	esc    bool
	mode   hideMode
	in     itemString
	digest [hashBytes]byte
}

// itemString is a string of a run: [off, off+n), escaped or not; n is 0 for none.
type itemString struct {
	off, n int
	esc    bool
}

func (e *itemEntry) size() int64 {
	return int64(itemEntryOverhead + 12*len(e.edits) + len(e.repl) + 4*len(e.log) + len(e.vals)*itemValueSize)
}

// itemValueSize is the size of an itemValue, for the cache's accounting.
const itemValueSize = 2*8 + 8 + 3*8 + hashBytes

// itemRecord is what a walker records while it masks a run the cache is to keep with a
// SecretValue hook: the hook it wraps, the calls that reached it and those whose value
// hideFrom could say the place of.
type itemRecord struct {
	hook  func(value, placeholder []byte)
	start int // the run's index in the walker's input
	calls int
	vals  []itemValue
}

// countItemHook is the SecretValue hook while a run is recorded.
func (w *walker) countItemHook(value, placeholder []byte) {
	w.itemRec.calls++
	w.itemRec.hook(value, placeholder)
}

// recordItemValue notes that the hook is about to receive the value of the string src[i:end],
// read in mode, whose placeholder has digest d. In the walker of a last-applied annotation's
// document (itemIn set), src is the annotation's text.
func (w *walker) recordItemValue(i, end int, esc bool, mode hideMode, d [hashBytes]byte) {
	r := w.itemRec
	v := itemValue{off: i, n: end - i, esc: esc, mode: mode, in: w.itemIn, digest: d}
	if v.in.n == 0 {
		v.off -= r.start
	}
	r.vals = append(r.vals, v)
}

// newItemCache returns a cache that holds about max bytes, or nil when max is not positive.
func newItemCache(max int64) *itemCache {
	if max <= 0 {
		return nil
	}
	c := &itemCache{
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		shardMax: max / itemShards / 2,
		scopes:   map[string]uint32{},
	}
	for i := range c.shards {
		c.shards[i].cur = map[itemKey]*itemEntry{}
	}
	return c
}

// scope returns the number of a scope, described by b, or 0 when there are too many.
func (c *itemCache) scope(b []byte) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.scopes[string(b)]; ok {
		return id
	}
	if len(c.scopes) >= maxItemScopes {
		return 0
	}
	id := uint32(len(c.scopes) + 1)
	c.scopes[string(b)] = id
	return id
}

// key returns the key of the run starting at src[i], whose items open with skip bytes like
// all others, and its shard.
func (c *itemCache) key(scope uint32, src []byte, i, skip int) (itemKey, *itemShard) {
	p := maphash.Bytes(c.seeds[0], window(src, i+skip, itemPrefix))
	return itemKey{scope: scope, prefix: p}, &c.shards[p%itemShards]
}

// window returns up to n bytes of src from i on.
func window(src []byte, i, n int) []byte {
	i = min(i, len(src))
	return src[i:min(i+n, len(src))]
}

// maxItemSkip bounds the opening the items of a list are taken to share.
const maxItemSkip = 512

// itemSkip returns how many bytes the items of the list whose first item is at src[i] open
// with alike, so that the bytes that select a run's entries and end runs are those where items
// differ: custom resources, as the API server writes them, all open with their apiVersion, kind
// and the first members of their metadata (`{"apiVersion":"cert-manager.io/v1","kind":
// "Certificate","metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":
// …`). It compares the first item with the second, found where an element opening like the
// first (forkPattern) follows it; 0 when there is none.
func itemSkip(src []byte, i int) int {
	var buf [maxForkPattern]byte
	p := forkPattern(buf[:0], src, i)
	if p == nil {
		return 0
	}
	k := bytes.Index(src[i:], p)
	if k < 0 {
		return 0
	}
	a, b := src[i:], src[i+k+2:]
	n := 0
	for n < maxItemSkip && n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// lookup returns how the run starting at src[i], whose key is k in shard s, was masked, or
// nil. It hashes no more than *budget bytes, and takes what it hashed from it.
func (c *itemCache) lookup(k itemKey, s *itemShard, src []byte, i int, budget *int) *itemEntry {
	s.mu.Lock()
	e := s.cur[k]
	if e == nil {
		if e = s.old[k]; e != nil {
			delete(s.old, k)
			s.add(k, e, c.shardMax)
		}
	}
	s.mu.Unlock()
	for ; e != nil; e = e.next {
		if i+e.n > len(src) || e.n > *budget {
			continue
		}
		*budget -= e.n
		c.hashed.Add(int64(e.n))
		if maphash.Bytes(c.seeds[1], src[i:i+e.n]) == e.sum {
			return e
		}
	}
	return nil
}

// store remembers e, how the run at src[i:i+e.n], whose key is k in shard s, was masked.
func (c *itemCache) store(k itemKey, s *itemShard, src []byte, i int, e *itemEntry) {
	if e.size() > c.shardMax {
		return
	}
	e.sum = maphash.Bytes(c.seeds[1], src[i:i+e.n])
	s.mu.Lock()
	defer s.mu.Unlock()
	chain, inCur := s.cur[k]
	if !inCur {
		if chain = s.old[k]; chain != nil {
			delete(s.old, k)
		}
	}
	// The new entry comes first; the others follow, copied, but not those of the same item
	// and not past maxItemChain.
	e.next = nil
	last, size := e, e.size()
	for n, o := 1, chain; o != nil && n < maxItemChain; o = o.next {
		if o.n == e.n && o.sum == e.sum || size+o.size() > c.shardMax {
			continue
		}
		cp := *o
		cp.next = nil
		last.next = &cp
		last = &cp
		size += cp.size()
		n++
	}
	if inCur {
		s.bytes -= chainSize(chain)
		delete(s.cur, k)
	}
	s.add(k, e, c.shardMax)
}

// add puts the chain e under k in the current generation, starting a new one when it is full.
// The caller holds s.mu, and e is in neither generation.
func (s *itemShard) add(k itemKey, e *itemEntry, max int64) {
	n := chainSize(e)
	if s.bytes+n > max {
		s.old, s.cur, s.oldBytes, s.bytes = s.cur, make(map[itemKey]*itemEntry, len(s.cur)), s.bytes, 0
	}
	s.cur[k] = e
	s.bytes += n
}

func chainSize(e *itemEntry) int64 {
	var n int64
	for ; e != nil; e = e.next {
		n += e.size()
	}
	return n
}

// itemScope returns the item cache's scope of the items of the list whose array is walked in
// context c at depth, whose elements are walked in context ec, or 0 when they are not cached:
// the cache is off for the document, or the list is not the document's top-level list of
// objects. The scope holds everything else an item's masking depends on: the contexts, the
// type hint of the items, the request's and the root's, what the walker knows of the list, and
// whether there is a SecretValue hook.
func (w *walker) itemScope(c, ec vctx, depth int) uint32 {
	if w.items == nil || c.role != roleItems || c.rules != 0 || c.hide != noHide || w.posDep != 1 ||
		w.trackEdits || w.level != 0 || w.itemRec != nil || ec.role != roleEmbedded || ec.hide != noHide {
		return 0
	}
	b := append(w.scopeBuf[:0], boolByte(w.onSecret != nil))
	for _, x := range []vctx{c, ec} {
		b = append(b, byte(x.role), byte(x.hint), byte(x.hmode), x.dock)
		b = binary.LittleEndian.AppendUint32(b, uint32(x.hide))
		b = binary.LittleEndian.AppendUint32(b, uint32(x.rdepth))
		b = binary.LittleEndian.AppendUint32(b, uint32(x.obj))
		b = binary.LittleEndian.AppendUint64(b, x.rules)
		b = appendScopeBytes(b, x.key)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(depth))
	b = binary.LittleEndian.AppendUint32(b, uint32(w.level))
	b = binary.LittleEndian.AppendUint32(b, uint32(w.posDep))
	b = appendScopeType(b, w.hintFor(ec))
	b = appendScopeType(b, w.target)
	b = appendScopeType(b, w.root)
	for _, st := range w.objs[:w.posDep] {
		b = appendScopeType(b, st.t)
		b = append(b, boolByte(st.check))
		for _, s := range [][]byte{st.name, st.namespace, st.refGroup, st.refResource, st.refSub,
			st.admGroup, st.admKind, st.admRGroup, st.admResource, st.seenKind, st.seenGroup} {
			b = appendScopeBytes(b, s)
		}
	}
	b = appendScopeBytes(b, w.keys)
	w.scopeBuf = b
	return w.items.scope(b)
}

// appendScopeType appends t to a scope's description.
func appendScopeType(b []byte, t objType) []byte {
	b = append(b, byte(t.id), boolByte(t.confirmed), boolByte(t.secret))
	b = appendScopeBytes(b, t.group)
	b = appendScopeBytes(b, t.kind)
	var rules uint32
	if t.rules != nil {
		rules = t.rules.seq
	}
	return binary.LittleEndian.AppendUint32(b, rules)
}

// appendScopeBytes appends s to a scope's description, telling nil from empty.
func appendScopeBytes(b, s []byte) []byte {
	if s == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// itemRun is a run of consecutive items of a list being masked for the cache, which keeps
// runs rather than single items: a lookup, a hash and an entry cost about as much for a run of
// items as for one. Where a run ends depends on the items' own bytes (an item whose first bytes
// hash to one of itemsPerRun values ends it), so that the same items make the same runs in
// every read of the list, whatever changed before them.
type itemRun struct {
	skip       int // the bytes all items open with alike (itemSkip)
	open       bool
	start      int // the index of the run's first item in the walker's input
	end        int // the end of its last item so far
	k          itemKey
	s          *itemShard
	edits, log int // len(w.edits) and len(w.log) when it started
	budget     int
	rec        *itemRecord
}

const (
	// itemsPerRun is the mean number of items in a run.
	itemsPerRun = 8
	// maxRunBytes ends a run that grew beyond it.
	maxRunBytes = 64 << 10
)

// cachedItem masks the list item at src[i] in the scope of the item cache like value, or, at
// the start of a run, takes how the run was masked from the cache. A run taken never ends past
// where the second half of a list split in two starts, f.start, so that it is still taken.
func (w *walker) cachedItem(run *itemRun, i int, c vctx, depth int, scope uint32, f *fork) (int, error) {
	if !run.open {
		k, s := w.items.key(scope, w.src, i, run.skip)
		if e := w.items.lookup(k, s, w.src, i, &w.lookups); e != nil && e.budget <= w.budget && (f == nil || i+e.n < f.start || i >= f.start) {
			w.items.hits.Add(1)
			w.replay(i, e)
			return i + e.n, nil
		}
		w.items.misses.Add(1)
		*run = itemRun{open: true, skip: run.skip, start: i, k: k, s: s, edits: len(w.edits), log: len(w.log), budget: w.budget}
		if w.onSecret != nil {
			if w.itemHook == nil {
				w.itemHook = w.countItemHook
			}
			rec := &w.itemRecBuf
			*rec = itemRecord{hook: w.onSecret, start: i, vals: rec.vals[:0]}
			run.rec = rec
			w.itemRec, w.onSecret = rec, w.itemHook
		}
		w.itemEdits = true
	}
	end, err := w.value(i, c, depth)
	if err != nil {
		w.dropRun(run)
		return end, err
	}
	run.end = end
	return end, nil
}

// runEnds reports whether the run ends with the item at src[i] that ended at end, before the
// next element at next (negative at the end of the list). A run ends with the list, before the
// second half of a list split in two (fork.go), past maxRunBytes and after an item whose first
// bytes say so.
func (w *walker) runEnds(run *itemRun, i, end, next int, f *fork) bool {
	if next < 0 || (f != nil && next >= f.start) || end-run.start >= maxRunBytes {
		return true
	}
	p := maphash.Bytes(w.items.seeds[0], window(w.src, i+run.skip, itemHead))
	return p%itemsPerRun == 0
}

// dropRun stops recording the run, keeping nothing of it.
func (w *walker) dropRun(run *itemRun) {
	if !run.open {
		return
	}
	w.edits = w.edits[:run.edits]
	w.itemEdits = false
	if rec := run.rec; rec != nil {
		w.itemRec, w.onSecret = nil, rec.hook
		rec.hook = nil
	}
	*run = itemRun{skip: run.skip}
}

// storeRun ends the run and remembers how its items were masked, unless the SecretValue hook
// had a value whose place in them it does not know.
func (w *walker) storeRun(run *itemRun) {
	if !run.open {
		return
	}
	i, end, rec := run.start, run.end, run.rec
	edits := w.edits[run.edits:]
	e := &itemEntry{n: end - i, budget: run.budget - w.budget}
	if rec != nil && rec.calls != len(rec.vals) {
		w.dropRun(run)
		return
	}
	if len(edits) > 0 {
		e.edits = make([]itemEdit, len(edits))
		n := 0
		for j, ed := range edits {
			n += ed.dstEnd - ed.dstStart
			e.edits[j] = itemEdit{off: int32(ed.start - i), n: int32(ed.end - ed.start), r: int32(ed.dstEnd - ed.dstStart)}
		}
		e.repl = make([]byte, 0, n)
		for _, ed := range edits {
			e.repl = append(e.repl, w.dst[ed.dstStart:ed.dstEnd]...)
		}
	}
	if log := w.log[run.log:]; len(log) > 0 {
		e.log = append(make([]int32, 0, len(log)), log...)
	}
	if rec != nil && len(rec.vals) > 0 {
		e.vals = append(make([]itemValue, 0, len(rec.vals)), rec.vals...)
	}
	k, s := run.k, run.s
	w.dropRun(run)
	w.items.store(k, s, w.src, i, e)
}

// replay does to the items from src[i] on what masking did to the run of e: its replacements,
// its masked fields, its budget, its values passed to the SecretValue hook, read from src.
func (w *walker) replay(i int, e *itemEntry) {
	repl := e.repl
	for _, ed := range e.edits {
		at := i + int(ed.off)
		w.open(at)
		w.dst = append(w.dst, repl[:ed.r]...)
		repl = repl[ed.r:]
		w.mark = at + int(ed.n)
	}
	w.log = append(w.log, e.log...)
	w.budget -= e.budget
	var in itemString
	for _, v := range e.vals {
		var value []byte
		if v.in.n == 0 {
			s := i + v.off
			value, _, _ = w.hiddenValue(s, s+v.n, v.esc, v.mode, b64Prefix{})
		} else {
			sub := w.subWalker()
			if v.in != in {
				// The annotation's text, as lastApplied gives it to the walker of its document.
				in = v.in
				s := i + in.off
				sub.in = append(sub.in[:0], w.text(s, s+in.n, in.esc)...)
			}
			sub.src = sub.in
			value, _, _ = sub.hiddenValue(v.off, v.off+v.n, v.esc, v.mode, b64Prefix{})
			sub.src = nil
		}
		w.onSecret(value, w.h.format(v.digest))
	}
}
