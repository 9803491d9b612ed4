package masking

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// This file holds the other half of masking: putting stored values back where a client wrote
// the placeholders it was shown. Clients read an object, change it and write it back (kubectl
// get -o yaml | edit | apply, client-go Get and Update, Helm marking its previous release
// superseded); the object they write holds placeholders where secrets were. A placeholder is
// put back only where it came from: at the same path of the same object, as the stored object
// masks to it. A placeholder anywhere else (moved to another field, another element, another
// object) is refused, since writing the value there would copy a secret somewhere it may be
// readable.

// ErrPlaceholderMoved is returned by Restore when a written placeholder is not, at the same
// path, what the stored object masks to.
var ErrPlaceholderMoved = errors.New("masking: a placeholder is not where its value is stored")

// maxRestoreDepth bounds the nesting of encoded documents Restore decodes.
const maxRestoreDepth = 6

// Restored is what Restore put back.
type Restored struct {
	// Object is the written object with the stored values in place of the placeholders, JSON.
	Object []byte
	// Values is the number of values put back.
	Values int
	// byString maps each written string that was restored to what it became.
	byString map[string]any
	// ambiguous are written strings restored to different values at different paths.
	ambiguous map[string]bool
}

// HasPlaceholder reports whether the JSON document doc carries a placeholder in one of its
// strings: plain, base64-encoded, or inside an encoded Helm release.
func HasPlaceholder(doc []byte) bool {
	if ContainsPlaceholder(doc) {
		return true
	}
	if !bytes.Contains(doc, gzipBase64Prefix) && !bytes.Contains(doc, doubleGzipPrefix) {
		return false
	}
	v, err := decodeTree(doc)
	if err != nil {
		return false
	}
	found := false
	walkStrings(v, func(s string) {
		found = found || deepPlaceholder(s, 0)
	})
	return found
}

// doubleGzipPrefix starts the base64 of the base64 of gzip data (a Helm release in a Secret's
// data).
var doubleGzipPrefix = []byte("SDRzSU")

// deepPlaceholder reports whether s carries a placeholder, plainly or in gzip data encoded in
// base64 (once or twice).
func deepPlaceholder(s string, depth int) bool {
	if ContainsPlaceholder([]byte(s)) {
		return true
	}
	if depth >= maxRestoreDepth {
		return false
	}
	switch {
	case strings.HasPrefix(s, string(doubleGzipPrefix)):
		dec, err := base64.StdEncoding.DecodeString(s)
		return err == nil && deepPlaceholder(string(dec), depth+1)
	case strings.HasPrefix(s, string(gzipBase64Prefix)):
		dec, ok := gunzipText(s)
		return ok && deepPlaceholder(dec, depth+1)
	}
	return false
}

func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case string:
		f(v)
	case map[string]any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case []any:
		for _, e := range v {
			walkStrings(e, f)
		}
	}
}

// Restore puts back the stored values of the placeholders in written, an object a client writes
// (JSON), from stored, the object as it is stored (JSON), which the client was shown masked for
// the request target t. Every string of written that carries a placeholder must be, at the same
// path, the string the stored object masks to: it then becomes the stored value. Documents
// encoded in strings are followed: a Helm release payload (base64 of gzip of JSON, in a Secret
// once more in base64), JSON (the last-applied-configuration annotation, which may also take its
// values from the object it describes) and YAML documents (a release's manifest), where
// documents are matched by their kind, namespace and name.
//
// Restore then masks the result and checks that every string that carried a placeholder is
// masked back to what was written, so that no value is ever written where Gatehouse would show
// it. A placeholder that cannot be put back fails the whole restore with ErrPlaceholderMoved,
// naming its path.
func (m *Masker) Restore(written, stored []byte, t Target) (*Restored, error) {
	wv, err := decodeTree(written)
	if err != nil {
		return nil, fmt.Errorf("%w: the written object: %w", ErrMalformed, err)
	}
	lv, err := decodeTree(stored)
	if err != nil {
		return nil, fmt.Errorf("%w: the stored object: %w", ErrMalformed, err)
	}
	masked, _, err := m.JSON(nil, stored, t)
	if err != nil {
		return nil, err
	}
	mv, err := decodeTree(masked)
	if err != nil {
		return nil, fmt.Errorf("%w: the masked object: %w", ErrMalformed, err)
	}
	r := &restorer{rootL: lv, rootM: mv, byString: map[string]any{}, ambiguous: map[string]bool{}}
	out, err := r.value(wv, lv, mv, "", 0)
	if err != nil {
		return nil, err
	}
	obj, err := encodeTree(out)
	if err != nil {
		return nil, err
	}
	// The result, masked, must show every placeholder where it was written.
	again, _, err := m.JSON(nil, obj, t)
	if err != nil {
		return nil, err
	}
	av, err := decodeTree(again)
	if err != nil {
		return nil, fmt.Errorf("%w: the restored object: %w", ErrMalformed, err)
	}
	check := &restorer{rootL: out, rootM: av, byString: map[string]any{}, ambiguous: map[string]bool{}}
	if _, err := check.value(wv, out, av, "", 0); err != nil {
		return nil, fmt.Errorf("%w (the restored value would not be masked there)", err)
	}
	return &Restored{Object: obj, Values: r.n, byString: r.byString, ambiguous: r.ambiguous}, nil
}

// Replace returns doc (JSON: a patch built by the client) with every string that carries a
// placeholder replaced by what Restore made of the same string. A string that Restore did not
// restore, or restored to different values, fails with ErrPlaceholderMoved.
func (r *Restored) Replace(doc []byte) ([]byte, error) {
	v, err := decodeTree(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var replace func(v any, path string) (any, error)
	replace = func(v any, path string) (any, error) {
		switch t := v.(type) {
		case string:
			if !deepPlaceholder(t, 0) {
				return t, nil
			}
			out, ok := r.byString[t]
			if !ok || r.ambiguous[t] {
				return nil, fmt.Errorf("%w: at %s", ErrPlaceholderMoved, displayPath(path))
			}
			return out, nil
		case map[string]any:
			for k, e := range t {
				nv, err := replace(e, path+"."+k)
				if err != nil {
					return nil, err
				}
				t[k] = nv
			}
		case []any:
			for i, e := range t {
				nv, err := replace(e, path+"["+strconv.Itoa(i)+"]")
				if err != nil {
					return nil, err
				}
				t[i] = nv
			}
		}
		return v, nil
	}
	out, err := replace(v, "")
	if err != nil {
		return nil, err
	}
	return encodeTree(out)
}

func displayPath(p string) string {
	if p == "" {
		return "the top level"
	}
	return strings.TrimPrefix(p, ".")
}

// restorer walks a written value beside the stored value at the same path (l) and the stored
// value masked (m).
type restorer struct {
	// rootL and rootM are the stored object and its masking, for the last-applied document,
	// which describes the object it annotates.
	rootL, rootM any
	n            int
	byString     map[string]any
	ambiguous    map[string]bool
	// segs are the keys (and "#<index>" for elements) of the path being walked; rel is the
	// Helm release being walked, if any.
	segs []string
	rel  *releaseRoot
}

// releaseRoot is a decoded Helm release: the stored one, masked, and where it starts in segs.
type releaseRoot struct {
	l, m  any
	start int
}

func (r *restorer) value(w, l, m any, path string, depth int) (any, error) {
	switch wt := w.(type) {
	case string:
		return r.str(wt, l, m, path, depth)
	case map[string]any:
		lm, _ := l.(map[string]any)
		mm, _ := m.(map[string]any)
		out := make(map[string]any, len(wt))
		for k, e := range wt {
			r.segs = append(r.segs, k)
			v, err := r.value(e, lm[k], mm[k], path+"."+k, depth)
			r.segs = r.segs[:len(r.segs)-1]
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case []any:
		la, _ := l.([]any)
		ma, _ := m.([]any)
		out := make([]any, len(wt))
		for i, e := range wt {
			var le, me any
			if i < len(la) && i < len(ma) {
				le, me = la[i], ma[i]
			}
			r.segs = append(r.segs, "#"+strconv.Itoa(i))
			v, err := r.value(e, le, me, path+"["+strconv.Itoa(i)+"]", depth)
			r.segs = r.segs[:len(r.segs)-1]
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	return w, nil
}

// str restores one written string.
func (r *restorer) str(w string, l, m any, path string, depth int) (any, error) {
	if !deepPlaceholder(w, 0) {
		return w, nil
	}
	if ms, ok := m.(string); ok && ms == w && l != nil {
		r.note(w, l)
		return l, nil
	}
	ls, lok := l.(string)
	ms, mok := m.(string)
	var nestedErr error
	if lok && mok && depth < maxRestoreDepth {
		out, ok, err := r.nested(w, ls, ms, path, depth+1)
		if ok && err == nil {
			r.note(w, out)
			return out, nil
		}
		nestedErr = err
	}
	if strings.HasSuffix(path, "."+lastAppliedKey) && depth < maxRestoreDepth {
		// The last-applied document describes the object it annotates: its values may come from
		// the object's own fields at the same paths.
		if wd, err := decodeTree([]byte(w)); err == nil {
			if out, err := r.value(wd, r.rootL, r.rootM, path, depth+1); err == nil {
				if s, err := encodeTree(out); err == nil {
					r.note(w, string(s))
					return string(s), nil
				}
			}
		}
	}
	if l, ok := r.releaseValue(w); ok {
		r.note(w, l)
		return l, nil
	}
	if nestedErr != nil {
		return nil, nestedErr
	}
	return nil, fmt.Errorf("%w: at %s", ErrPlaceholderMoved, displayPath(path))
}

// releaseValue restores a value of a Helm release from where Helm copies it: the values a
// release was installed with (config) become the chart's values of the next revision when an
// upgrade reuses them, and the other way round. Both are masked by the same keyword rules.
func (r *restorer) releaseValue(w string) (any, bool) {
	if r.rel == nil || len(r.segs) <= r.rel.start {
		return nil, false
	}
	rel := r.segs[r.rel.start:]
	var alt []string
	switch {
	case len(rel) > 2 && rel[0] == "chart" && rel[1] == "values":
		alt = append([]string{"config"}, rel[2:]...)
	case len(rel) > 1 && rel[0] == "config":
		alt = append([]string{"chart", "values"}, rel[1:]...)
	default:
		return nil, false
	}
	m, ok := lookup(r.rel.m, alt)
	if ms, isStr := m.(string); !ok || !isStr || ms != w {
		return nil, false
	}
	return lookup(r.rel.l, alt)
}

// lookup returns the value at segs (keys, and "#<index>" for elements) of a decoded document.
func lookup(v any, segs []string) (any, bool) {
	for _, s := range segs {
		switch t := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = t[s]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(strings.TrimPrefix(s, "#"))
			if err != nil || !strings.HasPrefix(s, "#") || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, v != nil
}

func (r *restorer) note(w string, v any) {
	r.n++
	if prev, ok := r.byString[w]; ok && !sameValue(prev, v) {
		r.ambiguous[w] = true
	}
	r.byString[w] = v
}

func sameValue(a, b any) bool {
	ea, err1 := encodeTree(a)
	eb, err2 := encodeTree(b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

// nested restores a string that differs from what the stored value masks to, but encodes a
// document in the same way: it decodes the three, restores the documents and encodes the
// result as w was. ok is false when the strings are not encoded documents of one kind.
func (r *restorer) nested(w, l, m, path string, depth int) (any, bool, error) {
	switch {
	case strings.HasPrefix(w, string(gzipBase64Prefix)) && strings.HasPrefix(m, string(gzipBase64Prefix)):
		wd, ok1 := gunzipText(w)
		md, ok2 := gunzipText(m)
		ld, ok3 := gunzipText(l)
		if !ok1 || !ok2 || !ok3 {
			return nil, false, nil
		}
		out, err := r.str(wd, ld, md, path, depth)
		if err != nil {
			return nil, true, err
		}
		s, _ := out.(string)
		return string(EncodeHelmRelease([]byte(s))), true, nil
	case strings.HasPrefix(w, string(doubleGzipPrefix)) && strings.HasPrefix(m, string(doubleGzipPrefix)):
		wd, err1 := base64.StdEncoding.DecodeString(w)
		md, err2 := base64.StdEncoding.DecodeString(m)
		ld, err3 := base64.StdEncoding.DecodeString(l)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, false, nil
		}
		out, err := r.str(string(wd), string(ld), string(md), path, depth)
		if err != nil {
			return nil, true, err
		}
		s, _ := out.(string)
		return base64.StdEncoding.EncodeToString([]byte(s)), true, nil
	}
	if t := strings.TrimSpace(w); t != "" && (t[0] == '{' || t[0] == '[') {
		wd, err1 := decodeTree([]byte(w))
		md, err2 := decodeTree([]byte(m))
		ld, err3 := decodeTree([]byte(l))
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, false, nil
		}
		if looksLikeRelease([]byte(w)) {
			prev := r.rel
			r.rel = &releaseRoot{l: ld, m: md, start: len(r.segs)}
			defer func() { r.rel = prev }()
		}
		out, err := r.value(wd, ld, md, path, depth)
		if err != nil {
			return nil, true, err
		}
		s, err := encodeTree(out)
		if err != nil {
			return nil, true, err
		}
		return string(s), true, nil
	}
	if strings.Contains(w, "kind:") && strings.Contains(m, "kind:") {
		out, ok, err := r.manifest(w, l, m, path, depth)
		return out, ok, err
	}
	return nil, false, nil
}

// manifest restores YAML documents (a Helm release's manifest): each written document is
// matched with the stored one of the same kind, namespace and name (or at the same position).
func (r *restorer) manifest(w, l, m, path string, depth int) (any, bool, error) {
	wdocs, wseps := splitDocs(w)
	ldocs, _ := splitDocs(l)
	mdocs, _ := splitDocs(m)
	if len(ldocs) != len(mdocs) {
		return nil, false, nil
	}
	byID := map[string]int{}
	for i, d := range mdocs {
		if id := docIdentity(d); id != "" {
			byID[id] = i
		}
	}
	var b strings.Builder
	for i, wd := range wdocs {
		out := wd
		if deepPlaceholder(wd, 0) {
			j, ok := byID[docIdentity(wd)]
			if !ok && i < len(mdocs) && docIdentity(wd) == "" {
				j, ok = i, true
			}
			if !ok {
				return nil, true, fmt.Errorf("%w: at %s (document %d)", ErrPlaceholderMoved, displayPath(path), i+1)
			}
			if wd == mdocs[j] {
				out = ldocs[j]
			} else {
				head, body := splitHead(wd)
				wt, err1 := yamlTree(body)
				_, mbody := splitHead(mdocs[j])
				_, lbody := splitHead(ldocs[j])
				mt, err2 := yamlTree(mbody)
				lt, err3 := yamlTree(lbody)
				if err1 != nil || err2 != nil || err3 != nil {
					return nil, true, fmt.Errorf("%w: at %s (document %d)", ErrPlaceholderMoved, displayPath(path), i+1)
				}
				rt, err := r.value(wt, lt, mt, fmt.Sprintf("%s[document %d]", path, i+1), depth)
				if err != nil {
					return nil, true, err
				}
				js, err := encodeTree(rt)
				if err != nil {
					return nil, true, err
				}
				y, err := yaml.JSONToYAML(js)
				if err != nil {
					return nil, true, err
				}
				out = head + string(y)
				if !strings.HasSuffix(wd, "\n") {
					out = strings.TrimSuffix(out, "\n")
				}
			}
		}
		b.WriteString(out)
		if i < len(wseps) {
			b.WriteString(wseps[i])
		}
	}
	return b.String(), true, nil
}

// splitDocs splits YAML text at its document separators, which it returns too.
func splitDocs(s string) (docs, seps []string) {
	prev := 0
	for _, cut := range manifestSeparator.FindAllStringIndex(s, -1) {
		docs = append(docs, s[prev:cut[0]])
		seps = append(seps, s[cut[0]:cut[1]])
		prev = cut[1]
	}
	return append(docs, s[prev:]), seps
}

// splitHead splits a YAML document into its leading comments and blank lines, and the rest.
func splitHead(doc string) (head, body string) {
	body = doc
	for body != "" {
		line := body
		if nl := strings.IndexByte(body, '\n'); nl >= 0 {
			line = body[:nl+1]
		}
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' {
			break
		}
		body = body[len(line):]
	}
	return doc[:len(doc)-len(body)], body
}

func yamlTree(doc string) (any, error) {
	js, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return nil, err
	}
	return decodeTree(js)
}

// docIdentity names the Kubernetes object a YAML document holds: kind, namespace and name.
func docIdentity(doc string) string {
	_, body := splitHead(doc)
	t, err := yamlTree(body)
	if err != nil {
		return ""
	}
	o, ok := t.(map[string]any)
	if !ok {
		return ""
	}
	md, _ := o["metadata"].(map[string]any)
	kind, _ := o["kind"].(string)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	if kind == "" || name == "" {
		return ""
	}
	return kind + "/" + ns + "/" + name
}

// gunzipText decodes the base64 of gzip data.
func gunzipText(s string) (string, bool) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "", false
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxHelmRelease+1))
	if err != nil || len(data) > maxHelmRelease {
		return "", false
	}
	return string(data), true
}

// decodeTree decodes one JSON document, keeping numbers as written.
func decodeTree(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the document")
	}
	return v, nil
}

// encodeTree encodes a decoded JSON document, without HTML escaping.
func encodeTree(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
