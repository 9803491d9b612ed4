package masking

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"regexp"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// This file holds the masking of Helm releases. Helm keeps each release revision in the cluster
// as a JSON document, gzipped and base64-encoded: in a Secret of type helm.sh/release.v1 under
// data.release (so base64-encoded once more at the API), or, with the ConfigMap driver, in a
// ConfigMap's data.release. Masked whole, the payload is useless to Helm (it cannot decode a
// placeholder) and every Helm command fails; left alone, a ConfigMap release shows every value
// it was installed with. So the payload is decoded, the release is masked inside by its
// structure, and it is encoded again the way Helm encodes it:
//
//   - config (the values the release was installed with) and chart.values (the chart's
//     defaults): by key name and shape, like any values;
//   - manifest and hooks[].manifest (the rendered Kubernetes objects, YAML documents): each
//     document as the Kubernetes object it is, so a Secret in it is masked like a Secret, and a
//     document that does not parse as free text; the comments before a document (Helm's
//     "# Source:" lines) are kept;
//   - chart.templates[].data, chart.files[].data and chart.schema (base64 file contents): as
//     free text;
//   - info.resources (the objects `helm status --show-resources` lists): as Kubernetes objects;
//   - everything else (notes, descriptions) by the detectors.
//
// Whether a Secret holds a release is told by its type, which the API server never lets change;
// a ConfigMap value (or any other string) is decoded when it is the base64 of gzip data. A
// payload that does not decode as a release is masked whole, as before. Gzip data that is not a
// release is masked whole when anything in it would be masked.

// HelmReleaseType is the Secret type of Helm's release records.
const HelmReleaseType = "helm.sh/release.v1"

// kHelmRelease is the type of a decoded Helm release.
const kHelmRelease kindID = kKubeconfig + 1

var helmReleaseType = objType{id: kHelmRelease, confirmed: true}

// Roles of the members of a Helm release and of a release Secret.
const (
	// The Helm roles stay last: child and elem call the Helm helpers only for roles from
	// roleHelmSecretData on.
	roleHelmSecretData   role = roleKubeUser + 1 + iota // data of a helm.sh/release.v1 Secret
	roleHelmPayload                                     // its data.release: base64 of the payload
	roleHelmChart                                       // chart
	roleHelmFiles                                       // chart.templates, chart.files
	roleHelmFile                                        // one of them
	roleHelmFileData                                    // its data, chart.schema: base64 of a file
	roleHelmHooks                                       // hooks
	roleHelmHook                                        // one hook
	roleManifest                                        // manifest, hooks[].manifest: YAML documents
	roleHelmInfo                                        // info
	roleHelmResources                                   // info.resources: kind -> objects
	roleHelmResourceList                                // the objects of one kind
)

// hintUnknown gives an embedded object no hint: it names its own kind.
const hintUnknown = hintSelf + 1

// gzipBase64Prefix starts the base64 encoding of gzip data (1f 8b 08).
var gzipBase64Prefix = []byte("H4sI")

// maxHelmRelease bounds a decompressed release.
const maxHelmRelease = 64 << 20

// helmSecretType reports whether the object at objs[idx] names its type helm.sh/release.v1.
func (w *walker) helmSecretType(idx int32) bool {
	if idx < 0 {
		return false
	}
	st := &w.objs[idx]
	if st.start < 0 || st.start >= len(w.src) || w.src[st.start] != '{' {
		return false
	}
	if w.helmTypes.next(w.src, st.start, indexHelmReleaseType) < 0 && w.escapes.next(w.src, st.start, indexTypeEscape) < 0 {
		// No string after the object's start reads helm.sh/release.v1: the document holds
		// that string nowhere after it, and no escape that could spell it.
		return false
	}
	return string(memberString(w.src, st.start, "type")) == HelmReleaseType
}

// indexHelmReleaseType returns the index of the first "helm.sh/release.v1" (quotes included) in
// b, or -1. It looks for the tail from the dot on, whose first byte is rare in JSON and absent
// from base64, so that it reads long values fast.
func indexHelmReleaseType(b []byte) int {
	const head, tail = `"helm`, `.sh/release.v1"`
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(tail))
		if i < 0 {
			return -1
		}
		if i += off; i >= len(head) && string(b[i-len(head):i]) == head {
			return i - len(head)
		}
		off = i + 1
	}
}

// indexTypeEscape returns the index of the first \u or \/ in b, or -1: the only escapes that
// decode to a character of "type" or "helm.sh/release.v1". The others (\" \\ \b \f \n \r
// \t) decode to quotes, backslashes and control characters, which neither contains, so a
// document whose strings use only those (a last-applied annotation is full of \") cannot spell
// the type member with escapes. A \\ followed by u or / counts too: a false alarm only costs
// the look-ahead.
func indexTypeEscape(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\\')
		if i < 0 {
			return -1
		}
		i += off
		if i+1 < len(b) && (b[i+1] == 'u' || b[i+1] == '/') {
			return i
		}
		off = i + 1
	}
}

// nextIndex finds the next occurrence of a byte string in the document a walker works on,
// remembering its last answer, so that asking for each of many objects in turn reads the
// document about once.
type nextIndex struct {
	valid    bool
	from, at int // the first occurrence at or after from is at at (-1: none)
}

// next returns the index of the first occurrence in src at or after from of what index finds, or
// -1.
func (x *nextIndex) next(src []byte, from int, index func([]byte) int) int {
	if x.valid && from >= x.from && (x.at < 0 || from <= x.at) {
		return x.at
	}
	x.valid, x.from, x.at = true, from, -1
	if from < len(src) {
		if i := index(src[from:]); i >= 0 {
			x.at = from + i
		}
	}
	return x.at
}

// helmChild sets the context of the member key of a Helm release value in context p, and
// reports whether p was one.
func helmChild(p vctx, key []byte, c *vctx) bool {
	switch p.role {
	case roleHelmSecretData:
		if string(key) == "release" {
			c.role = roleHelmPayload
		} else {
			c.hide, c.hmode = idSecretData, hideBase64
		}
	case roleHelmChart:
		switch string(key) {
		case "templates", "files":
			c.role = roleHelmFiles
		case "schema":
			c.role = roleHelmFileData
		}
	case roleHelmFile:
		if string(key) == "data" {
			c.role = roleHelmFileData
		}
	case roleHelmHook:
		if string(key) == "manifest" {
			c.role = roleManifest
		}
	case roleHelmInfo:
		if string(key) == "resources" {
			c.role = roleHelmResources
		}
	case roleHelmResources:
		c.role = roleHelmResourceList
	default:
		return false
	}
	return true
}

// helmMember sets the context of the member key of a decoded release.
func helmMember(key []byte, c *vctx) {
	switch string(key) {
	case "chart":
		c.role = roleHelmChart
	case "manifest":
		c.role = roleManifest
	case "hooks":
		c.role = roleHelmHooks
	case "info":
		c.role = roleHelmInfo
	}
}

// helmElem sets the context of an element of an array in context p.
func helmElem(p vctx, c *vctx) {
	switch p.role {
	case roleHelmFiles:
		c.role, c.key = roleHelmFile, nil
	case roleHelmHooks:
		c.role, c.key = roleHelmHook, nil
	case roleHelmResourceList:
		c.role, c.hint, c.key = roleEmbedded, hintUnknown, nil
	}
}

// helmString masks a string in one of the Helm roles and reports whether it did.
func (w *walker) helmString(i, end int, esc bool, c vctx) bool {
	switch c.role {
	case roleHelmPayload:
		if w.m.hasExemptions && w.exempt(c, idSecretData) {
			return true
		}
		if !w.helmSecretPayload(i, end, esc) {
			w.hide(i, end, esc, idSecretData, hideBase64)
		}
	case roleManifest:
		w.manifest(i, end, esc)
	case roleHelmFileData:
		w.fileData(i, end, esc)
	default:
		return false
	}
	return true
}

// helmSecretPayload masks data.release of a release Secret: the base64 (of the API) of the
// base64 of the gzipped release. It reports false when the value is not a release.
func (w *walker) helmSecretPayload(i, end int, esc bool) bool {
	outer, err := base64.StdEncoding.AppendDecode(nil, w.text(i, end, esc))
	if err != nil {
		return false
	}
	inner, ok := w.maskRelease(outer)
	if !ok {
		return false
	}
	// The payload holds the release's values: the session knows it whole, as it knows the
	// values of other Secrets.
	w.reportSecret(outer)
	if inner != nil {
		w.replace(i, end, base64.StdEncoding.AppendEncode(nil, inner))
	}
	return true
}

// gzipValue masks a string that is the base64 of gzip data: a Helm release (the ConfigMap
// driver's data.release) structurally, anything else whole when something in it would be
// masked. It reports false when the value is not such data.
func (w *walker) gzipValue(i, end int, esc bool, c vctx) bool {
	text := bytes.Clone(w.text(i, end, esc))
	if masked, ok := w.maskRelease(text); ok {
		if masked != nil {
			w.replace(i, end, masked)
		}
		return true
	}
	data, ok := w.gunzipBase64(text)
	if !ok {
		return false
	}
	if w.level >= maxEmbedded || !utf8.Valid(data) {
		w.hide(i, end, esc, idBase64Document, hidePlain)
		return true
	}
	n := w.nestWalker()
	logLen := len(n.log)
	n.tedits = n.textEdits(n.tedits[:0], data, nil, true)
	n.log = n.log[:logLen]
	if len(n.tedits) > 0 && (!w.m.hasExemptions || !w.exempt(c, idBase64Document)) {
		w.hide(i, end, esc, idBase64Document, hidePlain)
	}
	return true
}

// gunzipBase64 decodes the base64 of gzip data, within maxHelmRelease.
func (w *walker) gunzipBase64(text []byte) ([]byte, bool) {
	if !bytes.HasPrefix(text, gzipBase64Prefix) {
		return nil, false
	}
	raw, err := base64.StdEncoding.AppendDecode(nil, text)
	if err != nil {
		return nil, false
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	limit := min(int64(maxHelmRelease), w.m.limits.MaxBodyBytes)
	data, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil || int64(len(data)) > limit {
		return nil, false
	}
	return data, true
}

// DecodeHelmRelease decodes a Helm release payload as Helm stores it (base64 of gzip of JSON,
// or base64 of JSON as Helm wrote releases before it compressed them) and returns the JSON.
func DecodeHelmRelease(payload []byte) ([]byte, bool) {
	raw, err := base64.StdEncoding.AppendDecode(nil, payload)
	if err != nil {
		return nil, false
	}
	if len(raw) > 3 && raw[0] == 0x1f && raw[1] == 0x8b && raw[2] == 0x08 {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, false
		}
		data, err := io.ReadAll(io.LimitReader(zr, maxHelmRelease+1))
		if err != nil || len(data) > maxHelmRelease {
			return nil, false
		}
		raw = data
	}
	if !looksLikeRelease(raw) {
		return nil, false
	}
	return raw, true
}

// EncodeHelmRelease encodes a release's JSON as Helm does: base64 of gzip.
func EncodeHelmRelease(release []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(release)
	_ = zw.Close()
	return base64.StdEncoding.AppendEncode(nil, buf.Bytes())
}

// looksLikeRelease reports whether doc is a JSON object with a release's name and one of its
// info, chart or manifest.
func looksLikeRelease(doc []byte) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return false
	}
	if memberString(doc, i, "name") == nil {
		return false
	}
	return hasMember(doc, i, "info") || hasMember(doc, i, "chart") || hasMember(doc, i, "manifest")
}

// hasMember reports whether the object at src[start] has the member key.
func hasMember(src []byte, start int, key string) bool {
	j := skipSpace(src, start+1)
	if j >= len(src) || src[j] == '}' {
		return false
	}
	for {
		if src[j] != '"' {
			return false
		}
		ke, kesc, err := scanString(src, j)
		if err != nil {
			return false
		}
		k := src[j+1 : ke-1]
		if kesc {
			k = unescape(nil, k)
		}
		if string(k) == key {
			return true
		}
		_, vi, err := scanKey(src, j)
		if err != nil {
			return false
		}
		ve, err := skipValue(src, vi, 1)
		if err != nil {
			return false
		}
		if j, err = next(src, ve, '}'); err != nil || j < 0 {
			return false
		}
	}
}

// maskRelease masks a release payload (base64 of gzip of JSON). It returns the payload to
// write instead (nil when nothing in it was masked) and whether it was a release.
func (w *walker) maskRelease(payload []byte) ([]byte, bool) {
	doc, ok := DecodeHelmRelease(payload)
	if !ok {
		return nil, false
	}
	if w.level >= maxEmbedded {
		return nil, false
	}
	s := newWalker(w.m)
	s.level = w.level + 1
	s.onSecret = w.onSecret
	s.reset(nil, doc, helmReleaseType)
	e, err := s.document(0, helmReleaseType)
	if err != nil || skipSpace(doc, e) != len(doc) {
		return nil, false
	}
	out := s.finish()
	if len(s.log) == 0 {
		return nil, true
	}
	w.log = append(w.log, s.log...)
	return EncodeHelmRelease(out), true
}

// manifestSeparator splits Helm's manifests into documents, as Helm's releaseutil does.
var manifestSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// manifest masks a string of YAML documents: each as the Kubernetes object it is, or as free
// text when it does not parse.
func (w *walker) manifest(i, end int, esc bool) {
	text := bytes.Clone(w.text(i, end, esc))
	out, changed := w.maskManifest(text)
	if changed {
		w.replace(i, end, out)
	}
}

// maskManifest masks YAML documents and reports whether anything changed.
func (w *walker) maskManifest(text []byte) ([]byte, bool) {
	var out []byte
	changed := false
	prev := 0
	cuts := manifestSeparator.FindAllIndex(text, -1)
	cuts = append(cuts, []int{len(text), len(text)})
	for _, cut := range cuts {
		doc := text[prev:cut[0]]
		masked, ok := w.maskManifestDoc(doc)
		if ok {
			changed = true
			out = append(out, masked...)
		} else {
			out = append(out, doc...)
		}
		out = append(out, text[cut[0]:cut[1]]...)
		prev = cut[1]
	}
	return out, changed
}

// maskManifestDoc masks one YAML document; it returns false when nothing in it is masked.
func (w *walker) maskManifestDoc(doc []byte) ([]byte, bool) {
	// The comments and blank lines before the document (Helm's "# Source:" line) are kept.
	body := doc
	for len(body) > 0 {
		line := body
		if nl := bytes.IndexByte(body, '\n'); nl >= 0 {
			line = body[:nl+1]
		}
		t := bytes.TrimSpace(line)
		if len(t) != 0 && t[0] != '#' {
			break
		}
		body = body[len(line):]
	}
	head := doc[:len(doc)-len(body)]
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, false
	}
	if w.level+1 >= maxEmbedded {
		return w.maskDocText(doc)
	}
	js, err := yaml.YAMLToJSON(body)
	if err != nil || len(js) == 0 || js[0] != '{' {
		return w.maskDocText(doc)
	}
	s := newWalker(w.m)
	s.level = w.level + 1
	t := w.m.unknownType()
	s.reset(nil, js, t)
	if _, err := s.document(0, t); err != nil {
		return w.maskDocText(doc)
	}
	masked := s.finish()
	if len(s.log) == 0 {
		return nil, false
	}
	y, err := yaml.JSONToYAML(masked)
	if err != nil {
		return w.maskDocText(doc)
	}
	w.log = append(w.log, s.log...)
	out := append(bytes.Clone(head), y...)
	if !bytes.HasSuffix(doc, []byte("\n")) {
		out = bytes.TrimSuffix(out, []byte("\n"))
	}
	return out, true
}

// maskDocText masks a document that is not an object as free text.
func (w *walker) maskDocText(doc []byte) ([]byte, bool) {
	n := w.nestWalker()
	logLen := len(n.log)
	n.tedits = n.textEdits(n.tedits[:0], doc, nil, true)
	if len(n.tedits) == 0 {
		n.log = n.log[:logLen]
		return nil, false
	}
	out := n.applyTextEdits(nil, doc, n.tedits)
	w.log = append(w.log, n.log[logLen:]...)
	n.log = n.log[:logLen]
	return out, true
}

// fileData masks the base64 contents of a chart's file as free text.
func (w *walker) fileData(i, end int, esc bool) {
	data, err := base64.StdEncoding.AppendDecode(nil, w.text(i, end, esc))
	if err != nil || !utf8.Valid(data) {
		return
	}
	out, changed := w.maskDocText(data)
	if changed {
		w.replace(i, end, base64.StdEncoding.AppendEncode(nil, out))
	}
}
