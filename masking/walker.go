package masking

import (
	"bytes"
	"errors"
	"sync/atomic"
)

// This file holds the structural rewriter: a single pass over a JSON document that copies it to
// the output and rewrites string values at secret positions. It tracks what each value is (a
// Secret's data, an annotation, a list item …) in a small context passed down the recursion,
// and what it knows about each enclosing Kubernetes object in an objState, one per nesting level
// in walker.objs, so that nothing is allocated per value.

// errConflict reports an object whose kind or apiVersion differs from what its members were
// masked for. The object position that owns it starts over.
var errConflict = errors.New("masking: object type conflict")

// Limits of the structural pass.
const (
	// maxPositions bounds the nesting of Kubernetes objects inside each other (list item, watch
	// event object, audit requestObject …). Deeper objects get the union of all rules.
	maxPositions = 16
	// restartSlack is added to the document length to form the budget for starting objects
	// over.
	restartSlack = 64 << 10
	// maxEmbedded bounds the nesting of last-applied documents inside each other.
	maxEmbedded = 4
)

const lastAppliedKey = "kubectl.kubernetes.io/last-applied-configuration"

// walker rewrites one document at a time. It is not safe for concurrent use; the Masker pools
// them.
type walker struct {
	m      *Masker
	h      *hasher
	src    []byte
	dst    []byte
	mark   int        // src[mark:] is not yet copied to dst
	target objType    // the hint of the request
	root   objType    // the hint for the document's root
	log    []int32    // the rule or detector ID of every masked field
	budget int        // bytes that may still be walked again after a type conflict
	level  int        // nesting of last-applied documents
	posDep int        // nesting of object positions
	sub    *walker    // walker for embedded documents, created on demand
	objs   []objState // the enclosing objects by nesting level
	keys   []byte     // unescaped keys of the enclosing members

	unesc []byte // scratch: unescaped strings
	tmp   []byte // scratch: masked text
	dec   []byte // scratch: decoded base64
	in    []byte // the embedded document this walker is working on, when it is a sub walker
	spans []span
	trig  []uint64

	// Nested documents (JSON in strings, in text, in base64). A walker that works on a nested
	// document records its edits, so that the walker of the enclosing string can carry them
	// over byte for byte.
	trackEdits bool
	edits      []edit
	nest       *walker    // walker for documents nested in strings and text, created on demand
	tedits     []textEdit // scratch: the edits of a text
	pend       []textEdit // scratch: the edits of a nested document
	b64        []byte     // scratch: a decoded base64 document
	arena      []byte     // scratch: replacement bytes of text edits
	offs       []int      // scratch: offsets mapped from text to raw string
	closed     [][2]int   // scratch: the objects that closed in a text that did not parse
	opens      []int      // scratch: the brackets open, for closedObjects

	// memo remembers the placeholders of the strings hidden in the document, created on demand.
	memo *hideMemo

	// onSecret is the Target's SecretValue hook, passed on to the walkers of embedded and
	// nested documents when they start.
	onSecret func(value, placeholder []byte)
	// sizeHint is the capacity the output gets at the first replacement, when it has none.
	sizeHint int
	// helmTypes and escapes find the next helm.sh/release.v1 and the next escape that could
	// spell it (indexTypeEscape) in src.
	helmTypes, escapes nextIndex
	// keyClasses classifies the names of JSON members, remembering the last classes
	// (keyCache). Member names are never masked (whoever may read an object sees them), so the
	// cache outlives a document.
	keyClasses keyCache
	// textKeys classifies the keys of assignments found in text. What text shows as a key can
	// be part of a value (abc in password=abc:def), so it is forgotten when the walker goes back
	// to the pool (forgetText); textKeysUsed says whether there is anything to forget.
	textKeys     keyCache
	textKeysUsed bool

	// forks says whether the items of the document's list may be masked in two halves at
	// once (fork.go); halt, set in the walker of a second half, stops it.
	forks bool
	halt  *atomic.Bool

	// items is the Masker's item cache when the document's list items may be taken from it
	// and added to it (itemcache.go); scopeBuf is scratch space for their scope.
	items    *itemCache
	scopeBuf []byte
	// lookups is what the document may still hash to look its runs up in the item cache.
	lookups int
	// runItems and runHashes are where the items of the run being masked for the item cache
	// start and end, and their two hashes each (scratch).
	runItems  []int32
	runHashes []uint64
	// itemRec, while a run of items the cache is to keep is masked with a SecretValue hook,
	// records where the hook's values are; itemHook, the hook meanwhile, counts its calls.
	itemRec    *itemRecord
	itemRecBuf itemRecord
	itemHook   func(value, placeholder []byte)
	// itemIn, in the walker of a last-applied annotation's document while itemRec is set, is
	// where the annotation is in the run.
	itemIn itemString
	// itemEdits records the edits of the top-level walker too, while it masks a run of items
	// the cache is to keep.
	itemEdits bool

	// An array of strings read as a command's words (argv.go): the line they make (scratch),
	// what the detectors found in the words, and what they found in the word being walked,
	// which maskText adds to what it finds itself.
	argvArray argvLine
	// A YAML sequence of words in text read as a command's words (argv.go): the line they
	// make, the triggers and findings of the detectors there, and the sequence's items and
	// those of the command or args it is read with (scratch).
	argvText    argvLine
	argvTrig    []uint64
	argvSpans   []span
	yamlItems   []yamlItem
	yamlCommand []yamlItem
	yamlArgs    []yamlItem
	// argvCommand is 1 + the index of the first word of the command whose args the array
	// being walked holds, or 0.
	argvCommand int
	argv        []argvFinding
	argvWord    []argvFinding
}

func newWalker(m *Masker) *walker {
	return &walker{m: m, h: newHasher(m.key), trig: make([]uint64, m.eng.words)}
}

// reset prepares w for a document.
func (w *walker) reset(dst, src []byte, target objType) {
	w.src, w.dst, w.mark, w.target = src, dst, 0, target
	w.helmTypes, w.escapes = nextIndex{}, nextIndex{}
	w.sizeHint = 0
	w.forks = false
	w.items, w.itemEdits = nil, false
	w.budget = len(src) + restartSlack
	w.posDep = 0
	if w.memo != nil {
		w.memo.next()
	}
	w.keys = w.keys[:0]
	w.edits = w.edits[:0]
}

// flush copies the input up to src[to] to the output.
func (w *walker) flush(to int) {
	w.dst = append(w.dst, w.src[w.mark:to]...)
	w.mark = to
}

// open starts the replacement of the input at src[i]: it copies the input before it and
// returns where the replacement starts in the output.
func (w *walker) open(i int) int {
	if w.dst == nil && w.sizeHint > 0 {
		w.dst = make([]byte, 0, w.sizeHint)
	}
	w.flush(i)
	return len(w.dst)
}

// close ends the replacement of src[i:end] by w.dst[d0:].
func (w *walker) close(i, end, d0 int) {
	w.mark = end
	if w.trackEdits || w.itemEdits {
		w.edits = append(w.edits, edit{start: i, end: end, dstStart: d0, dstEnd: len(w.dst)})
	}
}

// finish copies the rest of the input and returns the output.
func (w *walker) finish() []byte {
	w.flush(len(w.src))
	return w.dst
}

// record notes a masked field.
func (w *walker) record(id int) { w.log = append(w.log, int32(id)) }

// document rewrites the value starting at or after src[i], whose type hint is root, and returns
// the index after it.
func (w *walker) document(i int, root objType) (int, error) {
	w.root = root
	i = skipSpace(w.src, i)
	if i >= len(w.src) {
		return i, errEOF
	}
	c := vctx{role: roleEmbedded, hint: hintTarget, hide: noHide, obj: -1}
	return w.value(i, c, 0)
}

func (w *walker) value(i int, c vctx, depth int) (int, error) {
	src := w.src
	if i >= len(src) {
		return i, errEOF
	}
	switch b := src[i]; {
	case b == '"':
		return w.str(i, c)
	case b == '{' || b == '[':
		if depth >= maxDepth {
			return i, malformed(i, "nesting too deep")
		}
		if c.role == roleEmbedded && c.hide == noHide {
			return w.objectPos(i, c, depth)
		}
		if c.role == roleTypeField && w.objs[c.obj].check {
			return i, errConflict
		}
		if b == '{' {
			return w.object(i, c, depth)
		}
		return w.array(i, c, depth)
	case b == '-' || isDigit(b):
		end, err := scanNumber(src, i)
		if err != nil {
			return end, err
		}
		if c.role == roleTypeField && w.objs[c.obj].check {
			return i, errConflict
		}
		if c.hide != noHide {
			if w.onSecret != nil && isSecretValueRule(int(c.hide)) {
				w.onSecret(src[i:end], w.h.plain(src[i:end]))
			}
			d0 := w.open(i)
			w.dst = append(w.dst, '"')
			w.dst = w.h.appendPlain(w.dst, src[i:end])
			w.dst = append(w.dst, '"')
			w.close(i, end, d0)
			w.record(int(c.hide))
		}
		return end, nil
	default:
		end, err := scanLiteral(src, i)
		if err == nil && c.role == roleTypeField && w.objs[c.obj].check && src[i] != 'n' {
			return i, errConflict
		}
		return end, err
	}
}

// objectPos rewrites an object (or a JSON patch) at a position where a Kubernetes object is
// expected, working out its type first.
func (w *walker) objectPos(i int, c vctx, depth int) (int, error) {
	hint := w.hintFor(c)
	w.posDep++
	defer func() { w.posDep-- }()
	idx := w.posDep - 1
	for idx >= len(w.objs) {
		w.objs = append(w.objs, objState{})
	}
	if w.src[i] == '[' {
		w.objs[idx] = objState{t: hint, start: i}
		pc := vctx{role: rolePatchOps, obj: int32(idx), hide: noHide}
		return w.array(i, pc, depth)
	}

	var t objType
	check := false
	switch {
	case w.posDep > maxPositions:
		t = w.m.unknownType()
	default:
		// The API server writes kind first; an object without it takes its type from the
		// hint, watching for a kind member that contradicts it. Without a hint, the whole
		// object is read for its kind first.
		pt, ok := w.peekType(i, hint)
		switch {
		case ok:
			t, check = pt, true
		case hint.id != kUnknown:
			t, check = hint, true
		default:
			var err error
			if t, _, err = w.prescanType(i, hint); err != nil {
				return i, err
			}
		}
	}
	w.objs[idx] = objState{t: t, check: check, start: i}
	sp := w.savepoint()
	oc := w.objectCtx(idx)
	end, err := w.object(i, oc, depth)
	if err != errConflict {
		return end, err
	}
	// The object names another type than assumed: learn it from all its members and start
	// over, within the budget that keeps the work linear.
	w.rollback(sp)
	t, pend, err := w.prescanType(i, hint)
	if err != nil {
		return i, err
	}
	if w.budget -= pend - i; w.budget < 0 {
		return i, malformed(i, "too many objects name their kind after their data")
	}
	w.objs[idx] = objState{t: t, start: i}
	oc = w.objectCtx(idx)
	return w.object(i, oc, depth)
}

func (w *walker) objectCtx(idx int) vctx {
	c := vctx{role: roleObject, obj: int32(idx), hide: noHide}
	if r := w.objs[idx].t.rules; r != nil {
		c.rules = r.all
	}
	return c
}

// peekType reads the kind and apiVersion members when they come first, as the API server
// writes them. It reports whether it found the kind.
func (w *walker) peekType(i int, hint objType) (objType, bool) {
	src := w.src
	var kind, apiVersion []byte
	j := skipSpace(src, i+1)
	for n := 0; n < 2 && j < len(src) && src[j] == '"'; n++ {
		ke, kesc, err := scanString(src, j)
		if err != nil || kesc {
			break
		}
		key := src[j+1 : ke-1]
		if string(key) != "kind" && string(key) != "apiVersion" {
			break
		}
		vi := skipSpace(src, ke)
		if vi >= len(src) || src[vi] != ':' {
			break
		}
		vi = skipSpace(src, vi+1)
		if vi >= len(src) || src[vi] != '"' {
			break
		}
		ve, vesc, err := scanString(src, vi)
		if err != nil || vesc {
			break
		}
		if key[0] == 'k' {
			kind = src[vi+1 : ve-1]
		} else {
			apiVersion = src[vi+1 : ve-1]
		}
		j = skipSpace(src, ve)
		if j >= len(src) || src[j] != ',' {
			break
		}
		j = skipSpace(src, j+1)
	}
	if kind == nil {
		return objType{}, false
	}
	var group []byte
	if apiVersion != nil {
		group = groupOf(apiVersion)
	}
	t := w.m.resolve(group, kind)
	t.secret = t.secret || hint.secret
	return t, true
}

// prescanType reads all members of the object at src[i] for its kind and apiVersion. An object
// that names several kinds or apiVersions gets the union of all rules. It also returns the
// index after the object.
func (w *walker) prescanType(i int, hint objType) (objType, int, error) {
	src := w.src
	var kind, apiVersion []byte
	ambiguous := false
	j := skipSpace(src, i+1)
	if j >= len(src) {
		return hint, j, errEOF
	}
	if src[j] == '}' {
		return hint, j + 1, nil
	}
	for {
		if src[j] != '"' {
			return hint, j, malformed(j, "expected object key")
		}
		ke, kesc, err := scanString(src, j)
		if err != nil {
			return hint, ke, err
		}
		key := src[j+1 : ke-1]
		if kesc {
			key = unescape(nil, key)
		}
		_, vi, err := scanKey(src, j)
		if err != nil {
			return hint, vi, err
		}
		ve, err := skipValue(src, vi, 1)
		if err != nil {
			return hint, ve, err
		}
		if string(key) == "kind" || string(key) == "apiVersion" {
			var v []byte
			if src[vi] == '"' {
				if v = src[vi+1 : ve-1]; bytes.IndexByte(v, '\\') >= 0 {
					v = unescape(nil, v)
				}
			} else if src[vi] != 'n' {
				ambiguous = true
			}
			if string(key) == "kind" {
				ambiguous = ambiguous || (kind != nil && !bytes.Equal(kind, v))
				kind = v
			} else {
				ambiguous = ambiguous || (apiVersion != nil && !bytes.Equal(apiVersion, v))
				apiVersion = v
			}
		}
		j, err = next(src, ve, '}')
		if err != nil {
			return hint, j, err
		}
		if j < 0 {
			j = -j
			break
		}
	}
	switch {
	case ambiguous:
		return w.m.unknownType(), j, nil
	case kind == nil:
		return hint, j, nil
	}
	var group []byte
	if apiVersion != nil {
		group = groupOf(apiVersion)
	}
	t := w.m.resolve(group, kind)
	t.secret = t.secret || hint.secret
	return t, j, nil
}

// object rewrites the members of the object at src[i]. An object its members identify as a
// credential document (a service account key, a private JSON Web Key) is rewritten again with
// every value hidden.
func (w *walker) object(i int, c vctx, depth int) (int, error) {
	src := w.src
	start := i
	sp := w.savepoint()
	var evidence uint8
	i = skipSpace(src, i+1)
	if i >= len(src) {
		return i, errEOF
	}
	if src[i] == '}' {
		return i + 1, nil
	}
	var name []byte // the "name" member, for name/value pairs such as env
	nameKnown := false
	// The first element of the "command" array, for the first "args" (argv.go), and whether it
	// was looked for: once an object, however many members it repeats.
	command, looked := -1, false
	for {
		if src[i] != '"' {
			return i, malformed(i, "expected object key")
		}
		ke, kesc, err := scanString(src, i)
		if err != nil {
			return ke, err
		}
		key := src[i+1 : ke-1]
		keyMark := len(w.keys)
		if kesc {
			// Unescaped keys live on a stack in w.keys, so that a key stays valid while its
			// value is rewritten.
			w.keys = unescape(w.keys, key)
			key = w.keys[keyMark:]
		}
		i = skipSpace(src, ke)
		if i >= len(src) {
			return i, errEOF
		}
		if src[i] != ':' {
			return i, malformed(i, "expected colon")
		}
		i = skipSpace(src, i+1)
		if i >= len(src) {
			return i, errEOF
		}
		var cc vctx
		if c.role == rolePatchOp && string(key) == "value" {
			cc = w.patchValueCtx(c.obj, src, start)
		} else {
			cc = w.child(&c, key)
		}
		if c.role == roleValue && cc.role == roleValue && cc.hide == noHide && src[i] == '"' && string(key) == "value" {
			if !nameKnown {
				name, nameKnown = memberString(src, start, "name"), true
			}
			if name != nil {
				cc.key = name
			}
		}
		vs := i
		if src[i] == '"' {
			i, err = w.str(i, cc) // as value would, without copying cc once more
		} else {
			if src[i] == '[' && (string(key) == "command" || string(key) == "args") {
				// A container's command line is its command's words, then its args'.
				switch {
				case string(key) == "command":
					command = firstElement(src, i)
				case !looked:
					if command < 0 {
						command = memberArray(src, start, "command")
					}
					w.argvCommand = command + 1
					looked = true
				}
			}
			i, err = w.value(i, cc, depth+1)
			w.argvCommand = 0
		}
		if err != nil {
			return i, err
		}
		if src[vs] == '"' {
			w.capture(&c, key, src[vs:i], &name, &nameKnown)
			evidence |= docEvidence(key, src[vs+1:i-1])
		} else {
			evidence |= docEvidence(key, nil)
		}
		w.keys = w.keys[:keyMark]
		i, err = next(src, i, '}')
		if err != nil {
			return i, err
		}
		if i < 0 {
			if evidence != 0 && c.hide == noHide {
				if id := credentialDocument(evidence); id >= 0 && !w.m.disabled[id] {
					w.rollback(sp)
					return w.object(start, vctx{obj: c.obj, hide: int32(id), hmode: hidePlain}, depth)
				}
			}
			return -i, nil
		}
	}
}

// capture records string members the rewriter needs later: metadata.name and namespace, the
// audit objectRef, the AdmissionReview request kind and resource, and names of name/value
// pairs. quoted includes the quotes.
func (w *walker) capture(c *vctx, key, quoted []byte, name *[]byte, nameKnown *bool) {
	v := func() []byte {
		raw := quoted[1 : len(quoted)-1]
		if bytes.IndexByte(raw, '\\') >= 0 {
			return unescape(nil, raw)
		}
		return raw
	}
	if c.role == roleValue {
		if string(key) == "name" {
			*name, *nameKnown = v(), true
		}
		return
	}
	if c.obj < 0 {
		return
	}
	st := &w.objs[c.obj]
	switch c.role {
	case roleMetadata:
		switch string(key) {
		case "name":
			st.name = v()
		case "namespace":
			st.namespace = v()
		}
	case roleObjectRef:
		switch string(key) {
		case "apiGroup":
			st.refGroup = v()
		case "resource":
			st.refResource = v()
		case "subresource":
			st.refSub = v()
		}
	case roleAdmissionKind:
		switch string(key) {
		case "group":
			st.admGroup = v()
		case "kind":
			st.admKind = v()
		}
	case roleAdmissionResource:
		switch string(key) {
		case "group":
			st.admRGroup = v()
		case "resource":
			st.admResource = v()
		}
	}
}

// firstElement returns the index of the first element of the array at src[i], or -1 when it
// is empty.
func firstElement(src []byte, i int) int {
	if j := skipSpace(src, i+1); j < len(src) && src[j] != ']' {
		return j
	}
	return -1
}

// memberArray returns the index of the first element of the array member key of the object
// at src[start], or -1.
func memberArray(src []byte, start int, key string) int {
	if vi := memberValue(src, start, key, '['); vi >= 0 {
		return firstElement(src, vi)
	}
	return -1
}

// memberString returns the value of the string member key of the object at src[start], or nil.
func memberString(src []byte, start int, key string) []byte {
	vi := memberValue(src, start, key, '"')
	if vi < 0 {
		return nil
	}
	ve, _, err := scanString(src, vi)
	if err != nil {
		return nil
	}
	v := src[vi+1 : ve-1]
	if bytes.IndexByte(v, '\\') >= 0 {
		v = unescape(nil, v)
	}
	return v
}

// memberValue returns the index of the value of the first member key of the object at
// src[start] whose value starts with first (a string, an array), or -1.
func memberValue(src []byte, start int, key string, first byte) int {
	j := skipSpace(src, start+1)
	if j >= len(src) || src[j] == '}' {
		return -1
	}
	for {
		if src[j] != '"' {
			return -1
		}
		ke, kesc, err := scanString(src, j)
		if err != nil {
			return -1
		}
		k := src[j+1 : ke-1]
		if kesc {
			k = unescape(nil, k)
		}
		_, vi, err := scanKey(src, j)
		if err != nil {
			return -1
		}
		if string(k) == key && src[vi] == first {
			return vi
		}
		ve, err := skipValue(src, vi, 1)
		if err != nil {
			return -1
		}
		if j, err = next(src, ve, '}'); err != nil || j < 0 {
			return -1
		}
	}
}

// array rewrites the elements of the array at src[i].
func (w *walker) array(i int, c vctx, depth int) (int, error) {
	src := w.src
	i = skipSpace(src, i+1)
	if i >= len(src) {
		return i, errEOF
	}
	if src[i] == ']' {
		return i + 1, nil
	}
	var f *fork
	if w.forks {
		if f = w.forkItems(i, c, depth); f != nil {
			defer w.release(f)
		}
	}
	return w.elements(i, c, depth, f)
}

// elements rewrites the elements of an array from the one at src[i] on. When f is not nil, it
// masks the elements from f.start on: they are taken from it when an element ends right before
// f.start and it runs.
func (w *walker) elements(i int, c vctx, depth int, f *fork) (int, error) {
	src := w.src
	var flag []byte        // the previous element was a secret-sounding flag: --password
	var argv []argvFinding // the elements are a command's words (argv.go)
	var scope uint64       // the elements are list items the item cache keeps (itemcache.go)
	var run itemRun        // the items being masked for the cache
	for idx := 0; ; idx++ {
		if f != nil && i >= f.start {
			if f.reached(i) {
				return w.take(f)
			}
			f = nil
		}
		if w.halt != nil && w.halt.Load() {
			return i, errHalted
		}
		ec := w.elem(&c, idx)
		if idx == 0 {
			scope = w.itemScope(c, ec, depth)
			command := w.argvCommand - 1 // the words before these (args after a command)
			w.argvCommand = 0
			// Strings where a value, an object or a patch operation may be (a document that is
			// an array of strings) are a command's words.
			if (ec.role == roleValue || ec.role == roleEmbedded || ec.role == rolePatchOp) && ec.hide == noHide && isWordStart(src[i]) {
				argv = w.argvFindings(command, i, &ec)
			}
		}
		if flag != nil && ec.role == roleValue {
			ec.key = flag
		}
		flag = nil
		n := 0
		for n < len(argv) && argv[n].word == idx {
			n++
		}
		w.argvWord, argv = argv[:n], argv[n:]
		vs := i
		var err error
		if scope != 0 && src[i] == '{' {
			i, err = w.cachedItem(&run, i, ec, depth+1, scope, f)
		} else {
			w.storeRun(&run) // a run holds objects only
			i, err = w.value(i, ec, depth+1)
		}
		w.argvWord = nil
		if err != nil {
			return i, err
		}
		if src[vs] == '"' && ec.role == roleValue && ec.hide == noHide && n == 0 {
			// A word in which the command's line had a secret (-pS3cretPw9) names no flag.
			raw := src[vs+1 : i-1]
			if bytes.IndexByte(raw, '\\') >= 0 {
				raw = unescape(nil, raw) // rare: the apiserver escapes no letters
			}
			flag = secretFlag(raw)
		}
		end := i
		i, err = next(src, i, ']')
		if err != nil {
			w.dropRun(&run)
			return i, err
		}
		if run.open && w.runEnds(&run, vs, end, i, f) {
			w.storeRun(&run)
		}
		if i < 0 {
			return -i, nil
		}
	}
}
