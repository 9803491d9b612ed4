package masking

import (
	"bytes"
	"cmp"
	"math/bits"
	"slices"
	"sort"
	"strings"
)

// automaton is an Aho-Corasick automaton over the detectors' keywords, matched
// case-insensitively. It is the prefilter that keeps the regular expressions off texts that
// cannot contain what they look for: one table lookup per byte.
type automaton struct {
	class  [256]uint8 // byte -> input class; 0 for bytes no keyword contains
	stride int32      // number of classes
	next   []int32    // next[state+class] is the next state; states are premultiplied by stride
	// next16 is next in half the space, when the states fit: the table is looked up for every
	// byte of every text, and a smaller one stays in the processor's caches.
	next16 []uint16
	// States at or above outFrom have outputs: outs[(state-outFrom)/stride] lists the IDs of
	// the detectors whose keyword ends there.
	outFrom int32
	outs    [][]int
}

func newAutomaton(keywords map[string][]int) *automaton {
	a := &automaton{}
	// Input classes: one per distinct lower-case byte, upper-case letters folded onto them.
	n := uint8(1)
	words := make([]string, 0, len(keywords))
	for w := range keywords {
		words = append(words, w)
	}
	sort.Strings(words)
	for _, w := range words {
		for i := 0; i < len(w); i++ {
			if c := w[i]; a.class[c] == 0 {
				a.class[c] = n
				if isLower(c) {
					a.class[c-'a'+'A'] = n
				}
				n++
			}
		}
	}
	stride := int(n)
	a.stride = int32(stride)

	// Trie.
	type node struct {
		child []int32 // by class, -1 for none
		fail  int32
		out   []int
	}
	nodes := []node{{child: newChildren(stride)}}
	for _, w := range words {
		s := int32(0)
		for i := 0; i < len(w); i++ {
			c := a.class[w[i]]
			if nodes[s].child[c] < 0 {
				nodes = append(nodes, node{child: newChildren(stride)})
				nodes[s].child[c] = int32(len(nodes) - 1)
			}
			s = nodes[s].child[c]
		}
		nodes[s].out = append(nodes[s].out, keywords[w]...)
	}

	// Failure links and complete transitions, breadth first.
	queue := []int32{}
	for c := 0; c < stride; c++ {
		if t := nodes[0].child[c]; t >= 0 {
			nodes[t].fail = 0
			queue = append(queue, t)
		} else {
			nodes[0].child[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		f := nodes[s].fail
		nodes[s].out = mergeIDs(nodes[s].out, nodes[f].out)
		for c := 0; c < stride; c++ {
			if t := nodes[s].child[c]; t >= 0 {
				nodes[t].fail = nodes[f].child[c]
				queue = append(queue, t)
			} else {
				nodes[s].child[c] = nodes[f].child[c]
			}
		}
	}

	// Renumber: states without outputs first, so one comparison tells whether a state has any.
	order := make([]int32, 0, len(nodes))
	for i := range nodes {
		if len(nodes[i].out) == 0 {
			order = append(order, int32(i))
		}
	}
	a.outFrom = int32(len(order)) * a.stride
	for i := range nodes {
		if len(nodes[i].out) > 0 {
			order = append(order, int32(i))
			a.outs = append(a.outs, nodes[i].out)
		}
	}
	renum := make([]int32, len(nodes))
	for newIdx, old := range order {
		renum[old] = int32(newIdx)
	}
	a.next = make([]int32, len(nodes)*stride)
	for newIdx, old := range order {
		for c := 0; c < stride; c++ {
			a.next[newIdx*stride+c] = renum[nodes[old].child[c]] * a.stride
		}
	}
	if len(a.next) <= 1<<16 {
		a.next16 = make([]uint16, len(a.next))
		for i, n := range a.next {
			a.next16[i] = uint16(n)
		}
		a.next = nil
	}
	// The root must be state 0: it has no outputs, and it is the first state without any.
	return a
}

func newChildren(n int) []int32 {
	c := make([]int32, n)
	for i := range c {
		c[i] = -1
	}
	return c
}

func mergeIDs(a, b []int) []int {
	for _, id := range b {
		found := false
		for _, x := range a {
			found = found || x == id
		}
		if !found {
			a = append(a, id)
		}
	}
	return a
}

// scan sets the bits of trig for every detector with a keyword in text and reports whether
// there was any.
func (a *automaton) scan(text []byte, trig []uint64) bool {
	if a.next16 != nil {
		// scanQuad falls back on scanPair, and scanPair on scan16, for shorter texts; the
		// strings of a list are mostly short, and each call costs.
		switch {
		case len(text) >= minQuadScan:
			return a.scanQuad(text, trig)
		case len(text) >= minPairScan:
			return a.scanPair(text, trig)
		}
		return a.scan16(text, trig)
	}
	next, class, outFrom := a.next, &a.class, a.outFrom
	s := int32(0)
	found := false
	for _, c := range text {
		s = next[s+int32(class[c])]
		if s >= outFrom {
			found = true
			a.trigger(s, trig)
		}
	}
	return found
}

func (a *automaton) scan16(text []byte, trig []uint64) bool {
	next, class, outFrom := a.next16, &a.class, uint32(a.outFrom)
	s := uint32(0)
	found := false
	for _, c := range text {
		s = uint32(next[s+uint32(class[c])])
		if s >= outFrom {
			found = true
			a.trigger(int32(s), trig)
		}
	}
	return found
}

// trigger sets the bits of the detectors whose keywords end in state s.
func (a *automaton) trigger(s int32, trig []uint64) {
	for _, id := range a.outs[(s-a.outFrom)/a.stride] {
		trig[id>>6] |= 1 << (id & 63)
	}
}

// engine runs the detectors over texts.
type engine struct {
	dets     []*detector // indexed by ID; nil for rule IDs
	ac       *automaton
	always   []int  // detectors without keywords
	disabled []bool // by ID: disabled everywhere by the configuration
	words    int    // length of a trigger bitset in words
	// clean is set for the fixed syntaxes no keyword can occur in (syntax.go); never for
	// synNone.
	clean [numSyntaxes]bool
	// bySyntax is set when noFindings may decide on a text's syntax: when no detector without
	// keywords works with the walker's state.
	bySyntax bool
	// stop has the bytes that keep prefilter from passing over a text: those a detector
	// without keywords needs, and the starts of nested documents. nil when prefilter is off
	// (a detector without keywords does not say what it needs).
	stop *[256]bool
	// needs lists the bytes a detector without keywords needs, once each, when stop is set.
	needs string
	// commands has the bits of the detectors that read a command's words (detector.command),
	// as in a trigger bitset.
	commands []uint64
}

// newStops builds prefilter's stop bytes, or returns nil when a detector without keywords
// does not say what it needs.
func newStops(always []*detector) *[256]bool {
	t := new([256]bool)
	for _, d := range always {
		if d.needsAny == "" {
			return nil
		}
		for i := 0; i < len(d.needsAny); i++ {
			t[d.needsAny[i]] = true
		}
	}
	// The starts of nested documents, which textEdits walks.
	t['{'], t['['] = true, true
	return t
}

// maxKeywordLen is the length to which keywords are cut: it keeps the automaton's table small
// enough for the processor's caches.
const maxKeywordLen = 8

// minDetectLen is the length below which a text cannot hold anything a detector looks for.
const minDetectLen = 6

func newEngine(dets []*detector, nids int, disabled []bool) *engine {
	e := &engine{dets: make([]*detector, nids), disabled: disabled, words: (nids + 63) / 64}
	e.commands = make([]uint64, e.words)
	keywords := map[string][]int{}
	for _, d := range dets {
		e.dets[d.id] = d
		if disabled[d.id] && !d.multi {
			continue
		}
		if d.command {
			if len(d.keywords) == 0 {
				panic("masking: a detector of commands has no keywords")
			}
			e.commands[d.id>>6] |= 1 << (d.id & 63)
		}
		if len(d.keywords) == 0 {
			e.always = append(e.always, d.id)
		}
		for _, k := range d.keywords {
			k = strings.ToLower(k)
			if len(k) > maxKeywordLen {
				// A prefix of a keyword is in every match too; longer keywords only make the
				// automaton bigger, and the detector checks the rest.
				k = k[:maxKeywordLen]
			}
			keywords[k] = mergeIDs(keywords[k], []int{d.id})
		}
	}
	e.ac = newAutomaton(keywords)
	words := make([]string, 0, len(keywords))
	for k := range keywords {
		words = append(words, k)
	}
	e.clean = syntaxClean(words)
	always := make([]*detector, len(e.always))
	for i, id := range e.always {
		always[i] = e.dets[id]
	}
	e.stop = newStops(always)
	if e.stop != nil {
		for _, d := range always {
			for i := 0; i < len(d.needsAny); i++ {
				if c := d.needsAny[i]; strings.IndexByte(e.needs, c) < 0 {
					e.needs += string(c)
				}
			}
		}
	}
	e.bySyntax = true
	for _, id := range e.always {
		if e.dets[id].findW != nil {
			// It works with the walker's state; noFindings does not run it twice.
			e.clean, e.bySyntax = [numSyntaxes]bool{}, false
		}
	}
	return e
}

// find appends the merged, sorted spans of the secrets in text to spans[:0]. trig is scratch
// space of e.words words, all zero, and is left zero.
func (e *engine) find(w *walker, text []byte, trig []uint64, spans []span) []span {
	spans = spans[:0]
	if len(text) < minDetectLen {
		return spans
	}
	if !e.ac.scan(text, trig) && len(e.always) == 0 {
		return spans
	}
	return e.run(w, text, trig, spans)
}

// commandKeywords reports whether text holds a keyword of a detector that reads a command's
// words (detector.command, argv.go), and leaves the bits of those detectors in trig for
// runTriggered; trig is left zero when it returns false.
func (e *engine) commandKeywords(text []byte, trig []uint64) bool {
	if !e.ac.scan(text, trig) {
		return false
	}
	hit := false
	for k := range trig {
		trig[k] &= e.commands[k]
		hit = hit || trig[k] != 0
	}
	return hit
}

// findScanned is find for a text of minDetectLen bytes or more whose keywords the automaton
// has already put in trig (prefilter).
func (e *engine) findScanned(w *walker, text []byte, trig []uint64, spans []span) []span {
	return e.run(w, text, trig, spans[:0])
}

// run runs the detectors triggered in trig and those without keywords on text, clears trig and
// appends the merged, sorted spans of what they find to spans.
func (e *engine) run(w *walker, text []byte, trig []uint64, spans []span) []span {
	for _, id := range e.always {
		trig[id>>6] |= 1 << (id & 63)
	}
	return e.runTriggered(w, text, trig, spans)
}

// runTriggered runs the detectors triggered in trig on text, clears trig and appends the
// merged, sorted spans of what they find to spans.
func (e *engine) runTriggered(w *walker, text []byte, trig []uint64, spans []span) []span {
	for k, set := range trig {
		for set != 0 {
			b := set & -set
			set ^= b
			id := k*64 + bits.TrailingZeros64(b)
			spans = e.dets[id].run(w, text, spans)
		}
		trig[k] = 0
	}
	// Drop what is turned off, and placeholders of an earlier pass, so that masking twice
	// changes nothing.
	n := 0
	for _, s := range spans {
		if !e.disabled[s.id] && !isPlaceholder(text[s.start:s.end]) {
			spans[n] = s
			n++
		}
	}
	return mergeSpans(spans[:n])
}

// prefilter tells, before the detectors run on a plain string's text, what can be told
// without them. none: they find nothing in it, and it holds no nested document; it has no {
// or [, and either fewer than minDetectLen bytes or no keyword and no byte a detector without
// keywords needs (detector.needsAny). scanned: it has no { or [ but minDetectLen bytes or
// more, and keywords, whose detectors' bits the keyword scan has put in trig, or needed
// bytes; findScanned runs the detectors of trig and those without keywords without scanning
// the text again, as find would. Otherwise (false, false) the text goes through textEdits.
// trig is as for find; it is left zero unless scanned.
//
// A text without { or [ holds no nested document, and textEdits runs find on it whole (when
// it has minDetectLen bytes): what findScanned runs on the same bits of trig. The starts of
// nested documents are looked for first, since a text with them is scanned again in parts,
// and the needed bytes last, only in a text without keywords; in a short text, both in one
// read of its bytes, which costs less than the calls of bytes.IndexByte.
func (e *engine) prefilter(text []byte, trig []uint64) (none, scanned bool) {
	t := e.stop
	if t == nil {
		return false, false
	}
	need := false
	if len(text) < minPairScan {
		for _, c := range text {
			if t[c] {
				if c == '{' || c == '[' {
					return false, false
				}
				need = true
			}
		}
	} else if bytes.IndexByte(text, '{') >= 0 || bytes.IndexByte(text, '[') >= 0 {
		return false, false
	}
	if len(text) < minDetectLen {
		return true, false
	}
	if e.ac.scan(text, trig) {
		return false, true
	}
	if len(text) >= minPairScan {
		need = e.hasNeeded(text)
	}
	return !need, need
}

// hasNeeded reports whether text has a byte a detector without keywords needs.
func (e *engine) hasNeeded(text []byte) bool {
	for i := 0; i < len(e.needs); i++ {
		if bytes.IndexByte(text, e.needs[i]) >= 0 {
			return true
		}
	}
	return false
}

// mergeSpans sorts spans by start and merges overlapping ones. A merged span is counted under
// the detector of its first part, or of a later part when the first is a keyword rule.
func mergeSpans(spans []span) []span {
	if len(spans) < 2 {
		return spans
	}
	// A stable sort, as the insertion sort was: each detector's spans come in order, but a
	// text can hold many of several detectors, which an insertion sort orders in quadratic time.
	slices.SortStableFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	n := 0
	for _, s := range spans[1:] {
		if s.start < spans[n].end {
			if s.end > spans[n].end {
				spans[n].end = s.end
			}
			if isKeywordRule(spans[n].id) {
				spans[n].id = s.id // name the specific detector
			}
			continue
		}
		n++
		spans[n] = s
	}
	return spans[:n+1]
}

func isKeywordRule(id int) bool { return id == idPasswordAssignment || id == idKeywordEntropy }
