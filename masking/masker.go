package masking

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// Masker masks secrets in API responses, audit events and text. It is immutable and safe for
// concurrent use. Create it with New; the zero value is not usable.
type Masker struct {
	key      []byte
	eng      *engine
	names    []string // rule and detector names by ID
	disabled []bool   // by ID: turned off everywhere
	limits   Limits

	exemptions    []exemption // those that select objects or keys
	hasExemptions bool

	rulesByKind     map[string]map[string]*typeRules // kind -> group -> rules
	rulesAnyGroup   map[string]*typeRules            // kind -> rules of every group
	rulesByResource map[string]map[string]*typeRules // group -> resource -> rules
	rulesUnion      *typeRules                       // all rules, for objects of unknown type

	walkers    sync.Pool
	streamBufs bufferPool // watch streams' buffers (stream.go)
	items      *itemCache // how list items were masked (itemcache.go); nil when off

	// forkMin is the body size from which a list's items are masked in two halves at once
	// (fork.go); 0 turns that off. forks pools the halves. Set by tests only: forkTrace is
	// called on a second half's goroutine with "run" as it runs and "start" as it starts
	// masking, and on the caller's with "claimed" when the caller got to it first, and "taken"
	// or "dropped" as it is released; with forkWait, the caller never claims a second half.
	forkMin   int
	forks     sync.Pool
	forkTrace func(event string)
	forkWait  bool
}

// New returns a Masker for cfg. It fails with ErrInvalidConfig when the key is shorter than
// MinKeyLen, a regular expression does not compile, a path is malformed, or names collide.
func New(cfg Config) (*Masker, error) {
	if len(cfg.Key) < MinKeyLen {
		return nil, fmt.Errorf("%w: the key must be at least %d bytes", ErrInvalidConfig, MinKeyLen)
	}
	m := &Masker{key: bytes.Clone(cfg.Key), limits: cfg.Limits, forkMin: defaultForkMin}
	m.limits.setDefaults()
	m.items = newItemCache(m.limits.ItemCacheBytes)
	m.names = builtinNames()
	ids := map[string]int{}
	for id, n := range m.names {
		ids[n] = id
	}
	addName := func(name string) (int, error) {
		if name == "" {
			return 0, fmt.Errorf("%w: a rule or detector has no name", ErrInvalidConfig)
		}
		if _, dup := ids[name]; dup {
			return 0, fmt.Errorf("%w: name %q is used twice", ErrInvalidConfig, name)
		}
		ids[name] = len(m.names)
		m.names = append(m.names, name)
		return ids[name], nil
	}

	dets := append(append([]*detector(nil), builtinDetectors...), formatDets...)
	for _, s := range cfg.Detectors {
		id, err := addName(s.Name)
		if err != nil {
			return nil, err
		}
		d, err := compileDetector(id, s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		dets = append(dets, d)
	}
	if err := m.addRules(cfg.Rules, addName); err != nil {
		return nil, err
	}
	m.disabled = make([]bool, len(m.names))
	if err := m.addExemptions(cfg.Exemptions, ids); err != nil {
		return nil, err
	}
	m.eng = newEngine(dets, len(m.names), m.disabled)
	return m, nil
}

// maxRulePaths bounds the number of field rule paths.
const maxRulePaths = 64

func (m *Masker) addRules(rules []FieldRule, addName func(string) (int, error)) error {
	m.rulesByKind = map[string]map[string]*typeRules{}
	m.rulesAnyGroup = map[string]*typeRules{}
	m.rulesByResource = map[string]map[string]*typeRules{}
	var seq uint32
	newRules := func(kind []byte) *typeRules {
		seq++
		return &typeRules{kind: kind, seq: seq}
	}
	union := newRules(nil)
	n := 0
	for _, r := range rules {
		id, err := addName(r.Name)
		if err != nil {
			return err
		}
		if r.Kind == "" || len(r.Paths) == 0 {
			return fmt.Errorf("%w: rule %q needs a kind and paths", ErrInvalidConfig, r.Name)
		}
		res := r.Resource
		if res == "" {
			res = guessResource(r.Kind)
		}
		byGroup := m.rulesByKind[r.Kind]
		if byGroup == nil {
			byGroup = map[string]*typeRules{}
			m.rulesByKind[r.Kind] = byGroup
		}
		tr := byGroup[r.Group]
		if tr == nil {
			tr = newRules([]byte(r.Kind))
			byGroup[r.Group] = tr
		}
		if m.rulesByResource[r.Group] == nil {
			m.rulesByResource[r.Group] = map[string]*typeRules{}
		}
		m.rulesByResource[r.Group][res] = tr
		anyGroup := m.rulesAnyGroup[r.Kind]
		if anyGroup == nil {
			anyGroup = newRules([]byte(r.Kind))
			m.rulesAnyGroup[r.Kind] = anyGroup
		}
		for _, p := range r.Paths {
			segs, err := parsePath(p)
			if err != nil {
				return fmt.Errorf("%w: rule %q: %w", ErrInvalidConfig, r.Name, err)
			}
			if n++; n > maxRulePaths {
				return fmt.Errorf("%w: more than %d rule paths", ErrInvalidConfig, maxRulePaths)
			}
			for _, t := range []*typeRules{tr, anyGroup, union} {
				t.all |= 1 << len(t.paths)
				t.paths = append(t.paths, segs)
				t.ids = append(t.ids, id)
			}
		}
	}
	if n > 0 {
		m.rulesUnion = union
	}
	return nil
}

func (m *Masker) addExemptions(exs []Exemption, ids map[string]int) error {
	for i, e := range exs {
		x := exemption{kind: e.Kind, namespace: e.Namespace, name: e.Name, keys: e.Keys}
		if e.Group != "" {
			g := e.Group
			if g == "core" {
				g = ""
			}
			x.group = &g
		}
		global := e.Group == "" && e.Kind == "" && e.Namespace == "" && e.Name == "" && len(e.Keys) == 0
		if global && len(e.Detectors) == 0 {
			return fmt.Errorf("%w: exemption %d selects nothing", ErrInvalidConfig, i)
		}
		if len(e.Detectors) > 0 {
			x.ids = make([]bool, len(m.names))
			for _, d := range e.Detectors {
				id, ok := ids[d]
				if !ok {
					return fmt.Errorf("%w: exemption %d: unknown detector %q", ErrInvalidConfig, i, d)
				}
				switch {
				case id == idSecretData || id == idSecretStringData:
					if global || len(e.Keys) == 0 || e.Kind != "Secret" {
						return fmt.Errorf("%w: exemption %d: %s can only be exempted for Secret keys", ErrInvalidConfig, i, d)
					}
				case isStructuralRule(id) || id >= numBuiltin:
					return fmt.Errorf("%w: exemption %d: rule %q cannot be exempted", ErrInvalidConfig, i, d)
				}
				x.ids[id] = true
				if global {
					m.disabled[id] = true
				}
			}
		}
		if !global {
			m.exemptions = append(m.exemptions, x)
		}
	}
	m.hasExemptions = len(m.exemptions) > 0
	return nil
}

// Target is what the request URL says about a response: the type hint the engine uses for
// objects that do not name their kind (items of typed lists, rows of a Table, patch bodies in
// audit events). The proxy fills it from the request; the zero value means no hint.
type Target struct {
	// Group, Version, Resource and Subresource name the resource, e.g. "", "v1", "secrets".
	Group, Version, Resource, Subresource string
	// Namespace and Name name the object, when the request names one.
	Namespace, Name string
	// Watch is set for watch requests (?watch=true, or a /watch/ path). The API server labels
	// JSON watch responses plain application/json, so Body and Stream cannot tell otherwise.
	Watch bool
	// Path is the URL path of a request that is not for a resource (Resource is empty), such
	// as /version. NeedsMasking uses it; it is not a hint.
	Path string
	// SecretValue, when set, is called during the masking call (JSON, Body, or the Reads of
	// Stream) for every value of a Secret's data (decoded from base64 when it decodes) and
	// stringData, wherever the Secret appears (single objects, lists, Table rows, watch events,
	// last-applied and nested documents), including values an exemption keeps, and for the
	// payload of a Helm release Secret (decoded once), which is masked inside rather than
	// replaced. placeholder is the plain placeholder of value: what the client sees for it
	// (base64-decoded, for data). A value that already is a placeholder is not reported. Both
	// slices are valid only during the call; it may be called for a document that then fails
	// to mask. The proxy uses it to learn the values a session has read, so that the session's
	// exec output is masked with them. Default: nil, nothing is reported.
	SecretValue func(value, placeholder []byte)
}

// NeedsMasking reports whether a response to a request for t can carry a secret and must go
// through the Masker. It is conservative: every resource can, because any object may carry a
// kubectl.kubernetes.io/last-applied-configuration annotation or a credential in a free-form
// field. It returns false only for requests that name no resource and whose path serves no user
// data: /version, /healthz, /livez, /readyz (and their checks), /openapi/..., API discovery
// (/api, /api/v1, /apis, /apis/<group>, /apis/<group>/<version>) and the service account issuer
// discovery documents (/.well-known/openid-configuration, /openid/v1/jwks). A zero Target needs
// masking.
func (m *Masker) NeedsMasking(t Target) bool {
	if t.Resource != "" || t.Path == "" {
		return true
	}
	p := strings.TrimSuffix(t.Path, "/")
	switch p {
	case "/version", "/api", "/apis", "/healthz", "/livez", "/readyz",
		"/.well-known/openid-configuration", "/openid/v1/jwks":
		return false
	}
	for _, prefix := range []string{"/healthz/", "/livez/", "/readyz/", "/openapi/"} {
		if strings.HasPrefix(p, prefix) {
			return false
		}
	}
	switch segs := strings.Split(strings.TrimPrefix(p, "/"), "/"); {
	case segs[0] == "api" && len(segs) == 2:
		return !isPlainSegment(segs[1])
	case segs[0] == "apis" && (len(segs) == 2 || len(segs) == 3):
		return !isPlainSegment(segs[1]) || (len(segs) == 3 && !isPlainSegment(segs[2]))
	}
	return true
}

// isPlainSegment reports whether s looks like a group or version name.
func isPlainSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// targetType returns the hint a Target gives.
func (m *Masker) targetType(t Target) objType {
	if t.Resource == "" {
		return m.unknownType()
	}
	return m.resourceType([]byte(t.Group), []byte(t.Resource), []byte(t.Subresource))
}

// watchEventType is the type of a watch event: it never names a kind, its object is the
// object of the request's resource.
var watchEventType = objType{id: kWatchEvent}

func (m *Masker) getWalker(t Target) *walker {
	w, ok := m.walkers.Get().(*walker)
	if ok {
		w.log = w.log[:0]
	} else {
		w = newWalker(m)
	}
	w.onSecret = t.SecretValue
	return w
}

// maxPooledBuffer is the largest scratch buffer a pooled walker keeps.
const maxPooledBuffer = 1 << 20

func (m *Masker) putWalker(w *walker) {
	w.src, w.dst = nil, nil
	if w.memo != nil {
		w.memo.next() // nothing of a document outlives it, not even where its values were
	}
	w.dropSecretHook()
	w.forgetText()
	w.argvArray.forget()
	w.argvText.forget()
	if w.sub != nil {
		w.sub.src, w.sub.dst = nil, nil
		if cap(w.sub.in) > maxPooledBuffer || cap(w.sub.dst) > maxPooledBuffer {
			w.sub = nil
		}
	}
	// Walkers of nested documents keep their buffers for the next call unless they grew
	// large; none keeps a reference to the caller's input.
	for n, parent := w.nest, w; n != nil; parent, n = n, n.nest {
		n.src = nil
		if n.bigBuffers() {
			parent.nest = nil
			break
		}
	}
	if w.bigBuffers() {
		return
	}
	m.walkers.Put(w)
}

// dropSecretHook forgets the Target's SecretValue hook in w and the walkers it works with, so
// that a pooled walker keeps no reference to a caller's state.
func (w *walker) dropSecretHook() {
	if w == nil {
		return
	}
	w.onSecret = nil
	w.itemRec, w.itemRecBuf.hook = nil, nil
	w.sub.dropSecretHook()
	w.nest.dropSecretHook()
}

// forgetText clears the cache of text keys in w and the walkers it works with, so that no
// part of a value outlives the document it came from, nor can a later client time a hit on it.
func (w *walker) forgetText() {
	if w == nil {
		return
	}
	if w.textKeysUsed {
		w.textKeys, w.textKeysUsed = keyCache{}, false
	}
	w.sub.forgetText()
	w.nest.forgetText()
}

// bigBuffers reports whether a scratch buffer of w grew beyond what a pooled walker keeps.
func (w *walker) bigBuffers() bool {
	return max(cap(w.unesc), cap(w.tmp), cap(w.dec), capBytes(w.log), cap(w.dst), cap(w.arena), cap(w.b64), cap(w.in),
		cap(w.argvArray.line), cap(w.argvText.line), capBytes(w.edits), capBytes(w.tedits), capBytes(w.pend),
		capBytes(w.offs), capBytes(w.spans), capBytes(w.trig), cap(w.scopeBuf), capBytes(w.runItems),
		capBytes(w.runHashes), capBytes(w.itemRecBuf.vals), capBytes(w.objs), cap(w.keys), capBytes(w.closed),
		capBytes(w.opens), capBytes(w.argvTrig), capBytes(w.argvSpans), capBytes(w.yamlItems),
		capBytes(w.yamlCommand), capBytes(w.yamlArgs), capBytes(w.argv)) > maxPooledBuffer
}

// capBytes is the size of the array under s.
func capBytes[T any](s []T) int {
	var v T
	return cap(s) * int(unsafe.Sizeof(v))
}

// stats turns a log of masked fields into Stats.
func (m *Masker) stats(log []int32) Stats {
	if len(log) == 0 {
		return Stats{}
	}
	s := Stats{Fields: len(log), Detectors: make(map[string]int, 4)}
	// The log holds runs of one ID (the values of a Secret's data): one map update a run.
	for i := 0; i < len(log); {
		j := i + 1
		for j < len(log) && log[j] == log[i] {
			j++
		}
		s.Detectors[m.names[log[i]]] += j - i
		i = j
	}
	return s
}

// JSON masks one JSON document (an object, a list, a Table, a Status, an audit Event or
// EventList, a watch event, a JSON patch) and appends the result to dst. t is the type hint of
// the request; see Target. dst must not overlap src. On error dst is returned unchanged and
// the error wraps ErrMalformed; nothing of src must then be passed on.
func (m *Masker) JSON(dst, src []byte, t Target) ([]byte, Stats, error) {
	w := m.getWalker(t)
	defer m.putWalker(w)
	n := len(dst)
	hint := m.targetType(t)
	w.reset(dst, src, hint)
	end, err := w.document(0, hint)
	if err == nil && skipSpace(src, end) != len(src) {
		err = malformed(end, "data after the document")
	}
	if err != nil {
		return dst[:n], Stats{}, err
	}
	return w.finish(), m.stats(w.log), nil
}

// jsonBody masks one JSON document like JSON, but returns src itself when nothing in it was
// replaced, and sizes the output for src when something was, so that a large body is neither
// copied whole for nothing nor grown step by step. The output goes to buf when buf's capacity
// is that size.
func (m *Masker) jsonBody(buf, src []byte, t Target) ([]byte, Stats, error) {
	w := m.getWalker(t)
	defer m.putWalker(w)
	hint := m.targetType(t)
	size := len(src) + len(src)/8
	if cap(buf) < size {
		buf = nil
	}
	w.reset(buf[:0], src, hint)
	w.sizeHint = size
	w.forks = m.forkMin > 0 && len(src) >= m.forkMin && runtime.GOMAXPROCS(0) > 1
	w.items, w.lookups = m.items, 2*len(src)
	end, err := w.document(0, hint)
	if err == nil && skipSpace(src, end) != len(src) {
		err = malformed(end, "data after the document")
	}
	if err != nil {
		return nil, Stats{}, err
	}
	if len(w.log) == 0 {
		return src, Stats{}, nil
	}
	return w.finish(), m.stats(w.log), nil
}

// watchDocs masks a body of concatenated JSON documents (a watch stream read whole).
func (m *Masker) watchDocs(src []byte, t Target) ([]byte, Stats, error) {
	w := m.getWalker(t)
	defer m.putWalker(w)
	w.reset(nil, src, m.targetType(t))
	for i := skipSpace(src, 0); i < len(src); i = skipSpace(src, i) {
		end, err := w.document(i, watchEventType)
		if err != nil {
			return nil, Stats{}, err
		}
		i = end
	}
	return w.finish(), m.stats(w.log), nil
}

// Text masks free text (pod logs, exec output, any string) with the detectors and appends the
// result to dst. Only the secret part of a match is replaced, the text around it is kept. JSON
// documents in the text (structured log lines, JSON after a prefix) are masked as documents,
// with every byte that is not masked kept. Exemptions that select objects or keys do not apply
// to text.
func (m *Masker) Text(dst, src []byte) ([]byte, Stats) {
	w := m.getWalker(Target{})
	defer m.putWalker(w)
	dst = w.maskTextBytes(dst, src)
	return dst, m.stats(w.log)
}

// maskTextBytes appends src to dst with the detectors' findings replaced and the JSON
// documents in it (structured log lines) masked as documents.
func (w *walker) maskTextBytes(dst, src []byte) []byte {
	w.tedits = w.textEdits(w.tedits[:0], src, nil, true)
	if len(w.tedits) == 0 {
		return append(dst, src...)
	}
	return w.applyTextEdits(dst, src, w.tedits)
}

// Media types the engine distinguishes.
type mediaType int

const (
	mediaUnknown mediaType = iota
	mediaJSON
	mediaText
	mediaUnmaskable // protobuf, CBOR, YAML
)

// parseContentType classifies a Content-Type header value and reports stream=watch.
func parseContentType(ct string) (mediaType, bool) {
	base, params, _ := strings.Cut(ct, ";")
	base = strings.ToLower(strings.TrimSpace(base))
	watch := false
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "stream") && strings.EqualFold(strings.Trim(strings.TrimSpace(v), `"`), "watch") {
			watch = true
		}
	}
	switch {
	case base == "application/json" || (strings.HasPrefix(base, "application/") && strings.HasSuffix(base, "+json")):
		return mediaJSON, watch
	case base == "text/plain":
		return mediaText, watch
	case base == "application/vnd.kubernetes.protobuf", base == "application/cbor", base == "application/cbor-seq",
		base == "application/yaml", strings.HasSuffix(base, "+yaml"), strings.HasSuffix(base, "+cbor"),
		strings.HasSuffix(base, "+protobuf"):
		return mediaUnmaskable, watch
	}
	return mediaUnknown, watch
}

// Body masks a whole response body given its Content-Type and Content-Encoding headers:
//
//   - application/json and */*+json: JSON (for a watch, t.Watch or ;stream=watch: each event);
//   - text/plain: Text;
//   - protobuf, CBOR and YAML: ErrUnmaskable;
//   - other types: ErrUnmaskable when NeedsMasking(t), else the body unchanged.
//
// A gzip-encoded body is decompressed (up to Limits.MaxBodyBytes); other encodings are
// ErrUnmaskable. The result is never compressed: the caller drops Content-Encoding and sets
// Content-Length. When nothing was masked the result may be body itself.
func (m *Masker) Body(contentType, contentEncoding string, body []byte, t Target) ([]byte, Stats, error) {
	return m.BodyInto(nil, contentType, contentEncoding, body, t)
}

// BodyInto is Body writing the masked body into buf when buf's capacity is large enough for
// it (a little more than body's length), so that a caller masking one large body after another
// can reuse one buffer instead of having a new one allocated and cleared each time. The result
// is buf[:n] (buf's length is ignored), a slice of its own, or body itself, never another part
// of buf or body; buf must not overlap body.
func (m *Masker) BodyInto(buf []byte, contentType, contentEncoding string, body []byte, t Target) ([]byte, Stats, error) {
	switch enc := strings.ToLower(strings.TrimSpace(contentEncoding)); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		var err error
		if body, err = m.gunzip(body); err != nil {
			return nil, Stats{}, err
		}
	default:
		return nil, Stats{}, fmt.Errorf("%w: content encoding %q", ErrUnmaskable, enc)
	}
	mt, watch := parseContentType(contentType)
	if mt != mediaUnmaskable && len(bytes.TrimSpace(body)) == 0 {
		return body, Stats{}, nil
	}
	switch mt {
	case mediaJSON:
		if watch || t.Watch {
			return m.watchDocs(body, t)
		}
		return m.jsonBody(buf, body, t)
	case mediaText:
		if cap(buf) < len(body) {
			buf = nil
		}
		out, st := m.Text(buf[:0], body)
		return out, st, nil
	case mediaUnknown:
		if !m.NeedsMasking(t) {
			return body, Stats{}, nil
		}
	}
	return nil, Stats{}, fmt.Errorf("%w: content type %q", ErrUnmaskable, contentType)
}

// gunzip decompresses a gzip body within the body limit.
func (m *Masker) gunzip(body []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, m.limits.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	if int64(len(out)) > m.limits.MaxBodyBytes {
		return nil, fmt.Errorf("%w: decompressed body exceeds %d bytes", ErrTooLarge, m.limits.MaxBodyBytes)
	}
	return out, nil
}
