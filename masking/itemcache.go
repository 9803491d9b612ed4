package masking

import (
	"encoding/binary"
	"hash/maphash"
	"math"
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
// It keeps keyed hashes of the items' bytes (maphash, with seeds no one outside the process
// knows), and the bytes masking replaced parts of them with: placeholders, or a string
// rewritten around its placeholders (a last-applied annotation, a Helm release); never a value
// masking hid. A run is taken from the cache only when the hash of its first item, its length
// and the 128-bit hash of all its bytes match one masked before in the same scope (were two
// runs to share them, the replacements of one would be made in the other), so a changed byte
// anywhere in it (a new password in a ConfigMap, a new resourceVersion) masks it anew. A
// Secret's values, which the Target's SecretValue hook receives, are not kept either: the entry
// says where in the run each one is (in the run's bytes, or in the document its last-applied
// annotation holds) and what its placeholder was, and a run taken from the cache passes the
// values read from its own bytes again. A run whose masking passes the hook a value from
// anywhere else (an exempt value, a Helm release, a document nested deeper) is not kept.
//
// Looking a run up hashes as many of the bytes after its first item as each entry that item
// selects holds (runs that went on differently); a document may spend twice its own length so
// (walker.lookups; each half of a list split in two twice its own), so that lists crafted to
// select large entries again and again cost linear time.

// DefaultItemCacheBytes is the default of Limits.ItemCacheBytes.
const DefaultItemCacheBytes = 32 << 20

const (
	// itemShards is the number of independently locked parts of the cache.
	itemShards = 16
	// maxItemChain bounds the entries one first item selects (runs that go on differently),
	// so that a lookup hashes a run at most that many times.
	maxItemChain = 4
	// maxItemScopes bounds the scopes the cache tells apart; when more come, it forgets
	// those it numbered (their entries are then never found again, and age out).
	maxItemScopes = 1024
	// maxScopeBytes bounds the description of a scope; lists of larger ones are not cached.
	maxScopeBytes = 1 << 10
	// itemEntryOverhead is what an entry costs besides its replacements, IDs and values: the
	// struct, its slices' headers and its share of a map.
	itemEntryOverhead = 192
)

// itemCache remembers how runs of list items were masked. It is safe for concurrent use.
type itemCache struct {
	seeds    [4]maphash.Seed // of the items' two hashes (0, 2) and the runs' two sums (1, 3)
	shardMax int64           // bytes a shard's current generation holds before it becomes the old one

	mu        sync.Mutex
	scopes    map[string]uint64
	lastScope uint64

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
	scope uint64
	item  uint64 // hash of the run's first item
}

// itemEntry is how one run of items was masked. It is not changed once it is in the cache.
type itemEntry struct {
	next   *itemEntry // another run with the same key
	n      int        // length of the run's bytes, from its first item's start to its last's end
	sum    [2]uint64  // keyed hashes of the run's bytes (runSum)
	items  []int32    // where each item starts and ends in the run
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
	return int64(itemEntryOverhead + 12*len(e.edits) + len(e.repl) + 4*(len(e.log)+len(e.items)) + len(e.vals)*itemValueSize)
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
		seeds:    [4]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed(), maphash.MakeSeed(), maphash.MakeSeed()},
		shardMax: max / itemShards / 2,
		scopes:   map[string]uint64{},
	}
	for i := range c.shards {
		c.shards[i].cur = map[itemKey]*itemEntry{}
	}
	return c
}

// scope returns the number of a scope, described by b. Numbers are never given twice.
func (c *itemCache) scope(b []byte) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.scopes[string(b)]; ok {
		return id
	}
	if len(c.scopes) >= maxItemScopes {
		clear(c.scopes)
	}
	c.lastScope++
	c.scopes[string(b)] = c.lastScope
	return c.lastScope
}

// key returns the key of the run whose first item is src[i:end], and its shard. The key is
// the hash of the whole item, as runEnds takes it.
func (c *itemCache) key(scope uint64, src []byte, i, end int) (itemKey, *itemShard) {
	p := maphash.Bytes(c.seeds[0], src[i:end])
	return itemKey{scope: scope, item: p}, &c.shards[p%itemShards]
}

// lookup returns how the run starting at src[i], whose key is k in shard s, was masked, or
// nil. It hashes no more than *budget bytes, and takes what it hashed from it.
func (c *itemCache) lookup(k itemKey, s *itemShard, src []byte, i int, budget *int) *itemEntry {
	s.mu.Lock()
	e := s.cur[k]
	if e == nil {
		if e = s.old[k]; e != nil {
			delete(s.old, k)
			s.oldBytes -= chainSize(e)
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
		if c.runSum(src, i, e.items, nil) == e.sum {
			return e
		}
	}
	return nil
}

// runSum returns the two keyed hashes of the run at src[i:] whose items start and end at the
// offsets in items: of the bytes between the items, and of each item's two hashes
// (itemHashes), from hashes when it is not nil. Runs are told apart by 128 bits, and so are
// the items in them.
func (c *itemCache) runSum(src []byte, i int, items []int32, hashes []uint64) [2]uint64 {
	var h, g maphash.Hash
	h.SetSeed(c.seeds[1])
	g.SetSeed(c.seeds[3])
	var b [16]byte
	prev := i
	for k := 0; k+1 < len(items); k += 2 {
		start, end := i+int(items[k]), i+int(items[k+1])
		_, _ = h.Write(src[prev:start])
		_, _ = g.Write(src[prev:start])
		var p, q uint64
		if hashes != nil {
			p, q = hashes[k], hashes[k+1]
		} else {
			p, q = c.itemHashes(src[start:end])
		}
		binary.LittleEndian.PutUint64(b[:8], p)
		binary.LittleEndian.PutUint64(b[8:], q)
		_, _ = h.Write(b[:])
		_, _ = g.Write(b[:])
		prev = end
	}
	return [2]uint64{h.Sum64(), g.Sum64()}
}

// itemHashes returns the two keyed hashes of an item: the first is its key when it starts a
// run, and says whether a run ends with it.
func (c *itemCache) itemHashes(item []byte) (uint64, uint64) {
	return maphash.Bytes(c.seeds[0], item), maphash.Bytes(c.seeds[2], item)
}

// store remembers e, how the run whose key is k in shard s was masked.
func (c *itemCache) store(k itemKey, s *itemShard, e *itemEntry) {
	if e.size() > c.shardMax {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	chain, inCur := s.cur[k]
	if !inCur {
		if chain = s.old[k]; chain != nil {
			delete(s.old, k)
			s.oldBytes -= chainSize(chain)
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
// the cache is off for the document, the list is not the document's top-level list of objects,
// or the scope's description is too long (a list named by a huge name). The scope holds
// everything else an item's masking depends on: the contexts, the type hint of the items, the
// request's and the root's, what the walker knows of the list, and whether there is a
// SecretValue hook.
func (w *walker) itemScope(c, ec vctx, depth int) uint64 {
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
	if len(b) > maxScopeBytes {
		return 0
	}
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

// appendScopeBytes appends s to a scope's description, telling nil from empty. Where s would
// make the description longer than maxScopeBytes, it only makes it that long and one byte more:
// such a scope is not cached, and copying a huge name again for each list of a document (its
// "items" key may repeat) would cost time quadratic in the document's length.
func appendScopeBytes(b, s []byte) []byte {
	if s == nil {
		return append(b, 0)
	}
	if len(b)+len(s) > maxScopeBytes {
		return append(b, make([]byte, max(0, maxScopeBytes+1-len(b)))...)
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
// items as for one. Where a run ends depends on the items' own bytes (an item whose bytes hash
// to one of itemsPerRun values ends it), so that the same items make the same runs in every
// read of the list, whatever changed before them.
type itemRun struct {
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
func (w *walker) cachedItem(run *itemRun, i int, c vctx, depth int, scope uint64, f *fork) (int, error) {
	if !run.open {
		// The first item is read to its end once more, to key the run by all of it: the
		// bytes that tell objects apart are anywhere in it (custom resources, their members
		// sorted, open alike for hundreds of bytes).
		first, err := skipValue(w.src, i, depth)
		if err != nil {
			return w.value(i, c, depth) // which reports it
		}
		k, s := w.items.key(scope, w.src, i, first)
		if e := w.items.lookup(k, s, w.src, i, &w.lookups); e != nil && e.budget <= w.budget && (f == nil || i+e.n < f.start || i >= f.start) {
			w.items.hits.Add(1)
			w.replay(i, e)
			return i + e.n, nil
		}
		w.items.misses.Add(1)
		*run = itemRun{open: true, start: i, k: k, s: s, edits: len(w.edits), log: len(w.log), budget: w.budget}
		w.runItems, w.runHashes = w.runItems[:0], w.runHashes[:0]
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

// runEnds adds the item src[i:end] to the run and reports whether the run ends with it, before
// the next element at next (negative at the end of the list). A run ends with the list, before
// the second half of a list split in two (fork.go), past maxRunBytes and after an item whose
// hash says so: the hash of its first item is its key.
func (w *walker) runEnds(run *itemRun, i, end, next int, f *fork) bool {
	var p, q uint64
	if i == run.start {
		p, q = run.k.item, maphash.Bytes(w.items.seeds[2], w.src[i:end])
	} else {
		p, q = w.items.itemHashes(w.src[i:end])
	}
	w.runItems = append(w.runItems, int32(i-run.start), int32(end-run.start))
	w.runHashes = append(w.runHashes, p, q)
	return next < 0 || (f != nil && next >= f.start) || end-run.start >= maxRunBytes ||
		(p>>32)%itemsPerRun == 0 // the low bits pick the shard
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
	*run = itemRun{}
}

// storeRun ends the run and remembers how its items were masked, unless the SecretValue hook
// had a value whose place in them it does not know, or the run is longer than an entry's
// offsets can say (an item of more than 2 GiB).
func (w *walker) storeRun(run *itemRun) {
	if !run.open {
		return
	}
	i, end, rec := run.start, run.end, run.rec
	edits := w.edits[run.edits:]
	e := &itemEntry{n: end - i, budget: run.budget - w.budget}
	if (rec != nil && rec.calls != len(rec.vals)) || end-i > math.MaxInt32 {
		w.dropRun(run) // or its offsets would not fit an entry's
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
	e.items = append(make([]int32, 0, len(w.runItems)), w.runItems...)
	e.sum = w.items.runSum(w.src, i, e.items, w.runHashes)
	k, s := run.k, run.s
	w.dropRun(run)
	w.items.store(k, s, e)
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
