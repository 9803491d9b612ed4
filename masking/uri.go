package masking

import (
	"bytes"
	"net/url"
)

// requestURI masks the query of an audit event's requestURI: each parameter is decoded, given
// the keyword rules (its name is the key; a value after a secret-sounding flag value such as
// command=--password is keyed by that flag) and the detectors, and encoded again. It reports
// whether it replaced the string; if not, the caller masks it as ordinary text.
func (w *walker) requestURI(i, end int, esc bool, c vctx) bool {
	text := w.text(i, end, esc)
	q := bytes.IndexByte(text, '?')
	if q < 0 {
		return false
	}
	out := append([]byte(nil), text[:q+1]...)
	changed := false
	var flag []byte
	for n, param := range bytes.Split(text[q+1:], []byte("&")) {
		if n > 0 {
			out = append(out, '&')
		}
		k, v, _ := bytes.Cut(param, []byte("="))
		dk, err1 := url.QueryUnescape(string(k))
		dv, err2 := url.QueryUnescape(string(v))
		if err1 != nil || err2 != nil {
			dk, dv = string(k), string(v)
		}
		value := []byte(dv)
		id := -1
		if flag != nil {
			id = keyMasks(classifyKey(flag), flag, value)
		}
		if id < 0 {
			id = keyMasks(classifyKey([]byte(dk)), []byte(dk), value)
		}
		if id >= 0 && w.m.disabled[id] {
			id = -1
		}
		flag = secretFlag(value)
		switch {
		case id >= 0:
			out = append(out, k...)
			out = append(out, '=')
			out = append(out, url.QueryEscape(string(w.h.plain(value)))...)
			w.record(id)
			changed = true
		default:
			w.spans = w.m.eng.find(w, value, w.trig, w.spans)
			if len(w.spans) == 0 {
				out = append(out, param...)
				continue
			}
			masked := w.maskSpans(nil, value, w.spans)
			out = append(out, k...)
			out = append(out, '=')
			out = append(out, url.QueryEscape(string(masked))...)
			changed = true
		}
	}
	if !changed {
		return false
	}
	// The path may hold something too; mask the whole URI as text once more.
	w.spans = w.m.eng.find(w, out, w.trig, w.spans)
	if len(w.spans) > 0 {
		out = w.maskSpans(nil, out, w.spans)
	}
	w.replace(i, end, out)
	return true
}
