package masking

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// This file holds the masking of documents nested in strings and text: JSON held in a string
// value (a ConfigMap key, an annotation, an environment variable, a field of a JSON log line),
// JSON objects in log lines, and documents encoded in base64. A nested document is masked by a
// walker of its own, one level down, to a depth of maxEmbedded; its edits are carried into
// the enclosing string byte for byte, escaped as the string requires, so that the outer
// document stays valid and is otherwise unchanged. It also holds the recognition of credential
// documents, whose every field is one secret.

// edit is a replacement a walker made: src[start:end] became dst[dstStart:dstEnd].
type edit struct {
	start, end       int
	dstStart, dstEnd int
}

// textEdit is a replacement in a text: text[start:end] becomes a placeholder of itself,
// counted under id (rs < 0), or arena[rs:re], the output of a nested document's walker (whose
// stats are already counted).
type textEdit struct {
	start, end int
	id         int
	rs, re     int
}

// savepoint is the state of the output a walker can go back to.
type savepoint struct {
	dst, mark, log, keys, edits int
}

func (w *walker) savepoint() savepoint {
	return savepoint{dst: len(w.dst), mark: w.mark, log: len(w.log), keys: len(w.keys), edits: len(w.edits)}
}

func (w *walker) rollback(sp savepoint) {
	w.dst, w.mark, w.log, w.keys, w.edits = w.dst[:sp.dst], sp.mark, w.log[:sp.log], w.keys[:sp.keys], w.edits[:sp.edits]
}

// plainType is the type of a nested document's root: plain data, not a Kubernetes object
// unless it names its kind. Unlike an object of unknown type it keeps its "data".
var plainType = objType{id: kOther}

// nestWalker returns the walker for documents nested one level down.
func (w *walker) nestWalker() *walker {
	if w.nest == nil {
		w.nest = newWalker(w.m)
		w.nest.level = w.level + 1
		w.nest.trackEdits = true
	}
	w.nest.onSecret = w.onSecret
	return w.nest
}

// walkNested masks the JSON value at the start of doc with the nest walker. It returns the
// index after the value, or where parsing failed, and whether it parsed.
func (w *walker) walkNested(doc []byte) (int, bool) {
	n := w.nestWalker()
	n.reset(n.dst[:0], doc, plainType)
	n.log = n.log[:0]
	e, err := n.document(0, plainType)
	if err != nil {
		return e, false
	}
	// The output up to the value's end only: doc runs on to the end of the text, and copying
	// it all for each of many documents in one text would be quadratic.
	n.flush(e)
	return e, true
}

// textEdits appends the edits that mask text to dst: the JSON documents in it masked as
// documents (when nested is set and the nesting limit allows), the rest by the detectors. The
// stats of nested documents go to w.log; placeholders are counted when the edits are applied.
// c is the context of the value the text is, for exemptions; nil for free text, to which
// exemptions that select objects or keys do not apply.
func (w *walker) textEdits(dst []textEdit, text []byte, c *vctx, nested bool) []textEdit {
	w.arena = w.arena[:0]
	gap := 0
	if nested && w.level < maxEmbedded && len(text) >= 2 && (bytes.IndexByte(text, '{') >= 0 || bytes.IndexByte(text, '[') >= 0) {
		pos := 0
		array := false
		if f := skipSpace(text, 0); f < len(text) && text[f] == '[' {
			// An array is a document only when it is the whole text ("[INFO]" is not).
			pos, array = f, true
		}
		for pos < len(text) {
			start := pos
			if !array {
				j := bytes.IndexByte(text[pos:], '{')
				if j < 0 {
					break
				}
				start = pos + j
			}
			if k := skipSpace(text, start+1); !array && (k >= len(text) || (text[k] != '"' && text[k] != '}')) {
				pos = start + 1 // not a JSON object: "{a b}", "${VAR}", "func() {"
				continue
			}
			e, ok := w.walkNested(text[start:])
			if ok && array && skipSpace(text, start+e) != len(text) {
				ok = false
			}
			array = false
			if ok {
				dst, gap = w.takeNested(dst, text, gap, start, start+e, c), start+e
				pos = gap
				continue
			}
			// The objects that closed in what the failed parse read (a log line cut
			// short, an object a line of other text follows) are documents too; tried
			// once each, in a pass over those bytes, so that the work stays linear.
			// Resume after what was read; what a failed parse covered is searched as text.
			end := start + max(e, 1)
			w.closed = closedObjects(w.closed[:0], &w.opens, text, start, end)
			for _, o := range w.closed {
				if n, ok := w.walkNested(text[o[0]:o[1]]); ok && o[0]+n == o[1] {
					dst, gap = w.takeNested(dst, text, gap, o[0], o[1], c), o[1]
				}
			}
			pos = end
		}
	}
	return w.gapEdits(dst, text, gap, len(text), c)
}

// takeNested appends to dst the edits of the document text[start:end] the nest walker has
// just masked, after the detectors' findings in text[gap:start], and its stats to w.log.
func (w *walker) takeNested(dst []textEdit, text []byte, gap, start, end int, c *vctx) []textEdit {
	// Take the document's edits before the detectors run on the text before it (they may
	// use the nest walker for base64 documents).
	n := w.nest
	w.pend = w.pend[:0]
	for _, ed := range n.edits {
		rs := len(w.arena)
		w.arena = append(w.arena, n.dst[ed.dstStart:ed.dstEnd]...)
		w.pend = append(w.pend, textEdit{start: start + ed.start, end: start + ed.end, id: -1, rs: rs, re: len(w.arena)})
	}
	w.log = append(w.log, n.log...)
	dst = w.gapEdits(dst, text, gap, start, c)
	return append(dst, w.pend...)
}

// closedObjects appends to dst the bounds of the objects that open after text[start] and
// close before text[end] and are in no other that does, in order, reading the JSON strings
// in text[start:end] as strings; opens is scratch for the brackets open.
func closedObjects(dst [][2]int, opens *[]int, text []byte, start, end int) [][2]int {
	stack := (*opens)[:0]
	for i := start; i < end; i++ {
		switch text[i] {
		case '"':
			for i++; i < end && text[i] != '"'; i++ {
				if text[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			stack = append(stack, i)
		case '}', ']':
			if len(stack) == 0 {
				break
			}
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if text[i] != '}' || text[o] != '{' || o == start {
				break
			}
			for len(dst) > 0 && dst[len(dst)-1][0] > o {
				dst = dst[:len(dst)-1] // an object in this one
			}
			dst = append(dst, [2]int{o, i + 1})
		}
	}
	*opens = stack
	return dst
}

// gapEdits appends the detectors' findings in text[s:e] to dst.
func (w *walker) gapEdits(dst []textEdit, text []byte, s, e int, c *vctx) []textEdit {
	if e-s < minDetectLen {
		return dst
	}
	w.spans = w.m.eng.find(w, text[s:e], w.trig, w.spans)
	return w.spanEdits(dst, s, c)
}

// scannedEdits is textEdits for a text that engine.prefilter has scanned (and so holds no {
// or [): the findings of the detectors whose keywords it put in w.trig, and of those without
// keywords.
func (w *walker) scannedEdits(dst []textEdit, text []byte, c *vctx) []textEdit {
	w.arena = w.arena[:0]
	w.spans = w.m.eng.findScanned(w, text, w.trig, w.spans)
	return w.spanEdits(dst, 0, c)
}

// spanEdits appends w.spans, found in a text from its byte s on, to dst, without those an
// exemption in context c keeps.
func (w *walker) spanEdits(dst []textEdit, s int, c *vctx) []textEdit {
	if w.m.hasExemptions && c != nil {
		w.spans = w.filterExempt(*c, w.spans)
	}
	for _, sp := range w.spans {
		dst = append(dst, textEdit{start: s + sp.start, end: s + sp.end, id: sp.id, rs: -1})
	}
	return dst
}

// firstID returns the ID that names a set of edits: the first placeholder's detector, else
// the first thing a nested walker counted (in w.log from logFrom on).
func (w *walker) firstID(edits []textEdit, logFrom int) int {
	for _, e := range edits {
		if e.rs < 0 {
			return e.id
		}
	}
	if len(w.log) > logFrom {
		return int(w.log[logFrom])
	}
	return idKeywordEntropy
}

// applyTextEdits appends text with the edits applied to dst.
func (w *walker) applyTextEdits(dst, text []byte, edits []textEdit) []byte {
	prev := 0
	for _, e := range edits {
		dst = append(dst, text[prev:e.start]...)
		if e.rs < 0 {
			dst = w.h.appendPlain(dst, text[e.start:e.end])
			w.record(e.id)
		} else {
			dst = append(dst, w.arena[e.rs:e.re]...)
		}
		prev = e.end
	}
	return append(dst, text[prev:]...)
}

// spliceEdits applies edits of the text of the string src[i:end] to the output: each edit
// replaces the raw bytes its text came from, the replacement escaped as a JSON string, and
// every other byte stays as it was.
func (w *walker) spliceEdits(i, end int, esc bool, text []byte, edits []textEdit) {
	base := i + 1
	offs := w.offs[:0]
	for _, e := range edits {
		offs = append(offs, e.start, e.end)
	}
	if esc {
		rawOffsets(w.src[base:end-1], offs)
	}
	w.offs = offs
	for k, e := range edits {
		rs, re := base+offs[2*k], base+offs[2*k+1]
		d0 := w.open(rs)
		if e.rs < 0 {
			// A placeholder needs no escaping.
			w.dst = w.h.appendPlain(w.dst, text[e.start:e.end])
			w.record(e.id)
		} else {
			w.dst = appendEscaped(w.dst, w.arena[e.rs:e.re])
		}
		w.close(rs, re, d0)
	}
}

// rawOffsets maps offsets into the unescaped text of the JSON string body raw to offsets into
// raw, in place. offs holds pairs of start and end offsets in ascending order; an offset inside
// the bytes of one escape sequence is moved to the start of the sequence for a start and to
// its end for an end. Between escape sequences raw and its text are the same bytes (raw was
// validated as UTF-8), so a run of them is passed in one step.
func rawOffsets(raw []byte, offs []int) {
	r, u, k := 0, 0, 0
	for k < len(offs) && r < len(raw) {
		if raw[r] != '\\' {
			n := bytes.IndexByte(raw[r:], '\\')
			if n < 0 {
				n = len(raw) - r
			}
			for k < len(offs) && offs[k] < u+n {
				offs[k] = r + offs[k] - u
				k++
			}
			r += n
			u += n
			continue
		}
		rawLen, outLen := jsonlex.EscapeLen(raw, r)
		for k < len(offs) && offs[k] < u+outLen {
			if offs[k] == u || k%2 == 0 {
				offs[k] = r
			} else {
				offs[k] = r + rawLen
			}
			k++
		}
		r += rawLen
		u += outLen
	}
	for ; k < len(offs); k++ {
		offs[k] = len(raw)
	}
}

// Credential documents: a JSON object whose members identify it as a credential file is
// masked whole, every value of it, since its parts are one secret (a service account key's
// private_key_id and client_email identify the key as much as the key itself).
const (
	docServiceAccount uint8 = 1 << iota // "type": "service_account"
	docPrivateKey                       // "private_key"
	docKty                              // "kty" (a JSON Web Key)
	docJWKPrivate                       // "d" or "k": the private part of a JSON Web Key
)

// docEvidence returns what the member key (with the string value v, nil for other values)
// says about the object being a credential document.
func docEvidence(key, v []byte) uint8 {
	switch string(key) {
	case "type":
		if string(v) == "service_account" {
			return docServiceAccount
		}
	case "private_key":
		return docPrivateKey
	case "kty":
		return docKty
	case "d", "k":
		return docJWKPrivate
	}
	return 0
}

// credentialDocument returns the ID under which an object with the evidence f is masked
// whole, or -1.
func credentialDocument(f uint8) int {
	switch {
	case f&(docServiceAccount|docPrivateKey) == docServiceAccount|docPrivateKey:
		return idGCPServiceAccount
	case f&(docKty|docJWKPrivate) == docKty|docJWKPrivate:
		return idJWK
	}
	return -1
}

// base64DocMarkers start the base64 encodings of documents that may hold credentials: JSON
// objects and arrays ({", {\n, [{), YAML or INI files (apiVersion:, [default]) and JSON Web
// Tokens (eyJ).
var base64DocMarkers = [][]byte{[]byte("eyJ"), []byte("ewo"), []byte("W3s"), []byte("YXBpVmVyc2lvbj"), []byte("W2RlZmF1bHRd"), []byte("ZXlK")}

func isBase64Byte(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '_' || c == '-' }

// findBase64Documents finds base64 tokens that decode to a document holding a credential (a
// docker config, a service account key, a kubeconfig, an AWS credentials file) and masks each
// whole.
func findBase64Documents(w *walker, text []byte, spans []span) []span {
	if w == nil || w.level >= maxEmbedded {
		return spans
	}
	for _, marker := range base64DocMarkers {
		for off := 0; ; {
			i := bytes.Index(text[off:], marker)
			if i < 0 {
				break
			}
			s := off + i
			off = s + 1
			if s > 0 && (isBase64Byte(text[s-1]) || text[s-1] == '.') {
				continue
			}
			e := s
			for e < len(text) && isBase64Byte(text[e]) {
				e++
			}
			if e < len(text) && text[e] == '.' {
				continue // a JWT's part
			}
			for k := 0; k < 2 && e < len(text) && text[e] == '='; k++ {
				e++
			}
			if e-s < 24 {
				continue
			}
			off = e
			if w.base64Credential(text[s:e]) {
				spans = append(spans, span{s, e, idBase64Document})
			}
		}
	}
	return spans
}

// base64Credential reports whether tok decodes to a text in which something would be masked.
func (w *walker) base64Credential(tok []byte) bool {
	n := w.nestWalker()
	enc := base64.StdEncoding
	if bytes.ContainsAny(tok, "-_") {
		enc = base64.URLEncoding
	}
	if tok[len(tok)-1] != '=' && len(tok)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	dec := n.b64[:0]
	if need := enc.DecodedLen(len(tok)); cap(dec) < need {
		dec = make([]byte, 0, need)
	}
	dec, err := enc.AppendDecode(dec, tok)
	n.b64 = dec
	if err != nil || !utf8.Valid(dec) {
		return false
	}
	logLen := len(n.log)
	n.tedits = n.textEdits(n.tedits[:0], dec, nil, true)
	n.log = n.log[:logLen]
	return len(n.tedits) > 0
}
