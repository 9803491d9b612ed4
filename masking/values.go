package masking

import (
	"bytes"
	"encoding/base64"
	"slices"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// This file holds the rewriting of string values: placeholders for hidden values, the keyword
// rules and detectors for ordinary strings, ConfigMap binaryData, and last-applied documents.

// str rewrites the string at src[i] as its context requires.
func (w *walker) str(i int, c vctx) (int, error) {
	if c.hide != noHide {
		return w.hiddenStr(i, c)
	}
	end, esc, err := scanString(w.src, i)
	if err != nil {
		return end, err
	}
	if c.role >= roleHelmSecretData && w.helmString(i, end, esc, c) {
		return end, nil
	}
	switch c.role {
	case roleTypeField:
		if !w.objs[c.obj].check {
			return end, nil
		}
		v := w.text(i, end, esc)
		if esc {
			v = bytes.Clone(v)
		}
		if w.typeConflict(c, v) {
			return i, errConflict
		}
		return end, nil
	case roleAnnotation:
		if string(c.key) == lastAppliedKey {
			w.lastApplied(i, end, esc, c)
			return end, nil
		}
	case roleBinaryValue:
		w.binaryValue(i, end, esc, c)
		return end, nil
	case roleRequestURI:
		if w.requestURI(i, end, esc, c) {
			return end, nil
		}
	}
	w.maskText(i, end, esc, &c)
	return end, nil
}

// hiddenStr rewrites the string at src[i], whose context hides it. A string that is to be
// decoded from base64 is decoded while it is scanned, up to its first byte outside the alphabet
// (its end, its padding): those bytes need no other check to be part of a JSON string. An
// exempt string nobody needs the value of is only scanned.
func (w *walker) hiddenStr(i int, c vctx) (int, error) {
	exempt := w.m.hasExemptions && w.exempt(c, int(c.hide))
	report := exempt && w.onSecret != nil && isSecretValueRule(int(c.hide))
	var pre b64Prefix
	j := i
	if c.hmode != hidePlain && (!exempt || report) {
		pre = w.decodePrefix(i + 1)
		if pre.k > 0 {
			// scanString steps over the byte at j as over an opening quote: the last
			// character decoded.
			j = i + pre.k
		}
	}
	end, esc, err := scanString(w.src, j)
	if err != nil {
		return end, err
	}
	switch {
	case !exempt:
		w.hideFrom(i, end, esc, int(c.hide), c.hmode, pre)
	case report:
		w.reportExempt(i, end, esc, c.hmode, pre)
	}
	return end, nil
}

// b64Prefix is how much of a string's text decodePrefix decoded: its first k bytes, into
// w.dec[:n].
type b64Prefix struct{ k, n int }

// decodePrefix decodes the base64 characters from src[i] on into w.dec, a group of eight at a
// time, up to the first group with a byte outside the alphabet or past the end of src.
func (w *walker) decodePrefix(i int) b64Prefix {
	src := w.src[i:]
	dec := w.dec[:cap(w.dec)]
	n, k := 0, 0
	for {
		dn, dk := decodeGroups(dec[n:], src[k:])
		n, k = n+dn, k+dk
		if len(src)-k < 8 || len(dec)-n >= 8 {
			break // at the end of src, or at a group outside the alphabet
		}
		dec = slices.Grow(dec[:n], max(n, 512))
		dec = dec[:cap(dec)]
	}
	w.dec = dec[:0]
	return b64Prefix{k: k, n: n}
}

// text returns the text of the string src[i:end] (quotes included), unescaped into scratch
// space when it has escapes.
func (w *walker) text(i, end int, esc bool) []byte {
	raw := w.src[i+1 : end-1]
	if !esc {
		return raw
	}
	w.unesc = jsonlex.UnescapeValid(w.unesc[:0], raw)
	return w.unesc
}

// replace replaces the string src[i:end] by the JSON string s.
func (w *walker) replace(i, end int, s []byte) {
	d0 := w.open(i)
	w.dst = appendQuoted(w.dst, s)
	w.close(i, end, d0)
}

// hide replaces the string src[i:end] by a placeholder. A value that already is a placeholder
// is kept, so that masking twice changes nothing.
func (w *walker) hide(i, end int, esc bool, id int, mode hideMode) {
	w.hideFrom(i, end, esc, id, mode, b64Prefix{})
}

// hideFrom is hide for a string whose text decodePrefix decoded in part.
func (w *walker) hideFrom(i, end int, esc bool, id int, mode hideMode, pre b64Prefix) {
	hook := w.onSecret != nil && isSecretValueRule(id)
	in := mode
	if w.memo == nil {
		w.memo = &hideMemo{gen: 1}
	}
	var v []byte
	var digest [hashBytes]byte
	slot, hit := w.memo.slot(w.src, i+1, end-i-2, mode)
	if hit {
		// The same string was hidden before in this document: only the hook needs its value.
		if !slot.ok {
			return
		}
		if hook {
			v, _, _ = w.hiddenValue(i, end, esc, mode, pre)
		}
		mode, digest = slot.out, slot.digest
	} else {
		var out hideMode
		var ok bool
		v, out, ok = w.hiddenValue(i, end, esc, mode, pre)
		*slot = hideMemoSlot{gen: w.memo.gen, start: i + 1, n: end - i - 2, mode: mode, out: out, ok: ok}
		if !ok {
			return
		}
		digest = w.h.digest(v)
		slot.digest, mode = digest, out
	}
	if hook {
		if w.itemRec != nil {
			w.recordItemValue(i, end, esc, in, digest)
		}
		w.onSecret(v, w.h.format(digest))
	}
	d0 := w.open(i)
	w.dst = append(w.dst, '"')
	if mode == hidePlain {
		w.dst = append(w.dst, w.h.format(digest)...)
	} else {
		w.dst = appendBase64Placeholder(w.dst, digest)
	}
	w.dst = append(w.dst, '"')
	w.close(i, end, d0)
	w.record(id)
}

// hiddenValue returns the value the placeholder of the string src[i:end] is computed from (its
// text, or in the base64 modes the bytes the text decodes to) and the mode the placeholder is
// written in. It reports false when the string already is a placeholder. pre is what
// decodePrefix decoded of the text.
func (w *walker) hiddenValue(i, end int, esc bool, mode hideMode, pre b64Prefix) ([]byte, hideMode, bool) {
	v := w.text(i, end, esc)
	if isPlaceholder(v) {
		return nil, mode, false
	}
	if mode != hidePlain {
		// An escape is outside the alphabet: the prefix decoded is the same in the text.
		dec, err := w.decodeBase64From(v, pre)
		switch {
		case err == nil && isPlaceholder(dec):
			return nil, mode, false
		case err == nil:
			v = dec
		case mode == hideBase64IfValid:
			mode = hidePlain
		}
	}
	return v, mode, true
}

// isSecretValueRule reports the rules whose values the SecretValue hook receives.
func isSecretValueRule(id int) bool { return id == idSecretData || id == idSecretStringData }

// reportExempt passes a Secret's value that an exemption keeps to the SecretValue hook: the
// client sees it as it is, and a session that read it knows it like the masked ones.
func (w *walker) reportExempt(i, end int, esc bool, mode hideMode, pre b64Prefix) {
	if v, _, ok := w.hiddenValue(i, end, esc, mode, pre); ok {
		w.onSecret(v, w.h.plain(v))
	}
}

// reportSecret passes a Secret's value that is masked inside rather than replaced (a Helm
// release payload) to the SecretValue hook, with its placeholder.
func (w *walker) reportSecret(v []byte) {
	if w.onSecret != nil {
		w.onSecret(v, w.h.plain(v))
	}
}

func (w *walker) decodeBase64(v []byte) ([]byte, error) {
	return w.decodeBase64From(v, b64Prefix{})
}

// decodeBase64From decodes v into w.dec, of which pre says what is decoded already.
func (w *walker) decodeBase64From(v []byte, pre b64Prefix) ([]byte, error) {
	n := base64.StdEncoding.DecodedLen(len(v)) + 2 // decodeBase64Std's slack
	if cap(w.dec) < n {
		w.dec = slices.Grow(w.dec[:pre.n], n-pre.n)
	}
	n, err := decodeBase64StdFrom(w.dec[:n], v, pre.k, pre.n)
	return w.dec[:n], err
}

// maskText applies the keyword rules and the detectors to an ordinary string.
func (w *walker) maskText(i, end int, esc bool, c *vctx) {
	raw := w.src[i+1 : end-1]
	kc := keyPlain
	if c.key != nil {
		kc = w.keyClasses.classify(c.key)
	}
	argv := w.argvWord // what the detectors found in this word of a command (argv.go)
	w.argvWord = nil
	if kc == keyPlain && len(argv) == 0 && (len(raw) < minDetectLen || w.m.eng.noFindings(w, raw)) {
		// Too short, or of a fixed syntax (a resourceVersion, uid or timestamp) in which no
		// keyword occurs: the detectors would find nothing (syntax.go).
		return
	}
	if w.m.hasExemptions && w.exempt(*c, -1) {
		return
	}
	if kc == keyPlain && len(argv) == 0 && bytes.HasPrefix(raw, gzipBase64Prefix) && w.gzipValue(i, end, esc, *c) {
		// Base64 of gzip data: a Helm release (the ConfigMap driver), masked inside, or
		// anything else, masked whole when something in it would be (helm.go).
		return
	}
	text := w.text(i, end, esc)
	if kc != keyPlain {
		if id := keyMasks(kc, c.key, text); id >= 0 && !w.m.disabled[id] && (!w.m.hasExemptions || !w.exempt(*c, id)) {
			// The whole value goes; a detector that recognised it names the reason.
			w.spans = w.m.eng.find(w, text, w.trig, w.spans)
			if w.m.hasExemptions {
				w.spans = w.filterExempt(*c, w.spans)
			}
			if len(w.spans) > 0 {
				id = w.spans[0].id
			}
			d0 := w.open(i)
			w.dst = append(w.dst, '"')
			w.dst = w.h.appendPlain(w.dst, text)
			w.dst = append(w.dst, '"')
			w.close(i, end, d0)
			w.record(id)
			return
		}
	}
	switch none, scanned := w.m.eng.prefilter(text, w.trig); {
	case none:
		// Nothing a detector looks for (engine.prefilter).
		w.tedits = w.tedits[:0]
	case scanned:
		w.tedits = w.scannedEdits(w.tedits[:0], text, c)
	default:
		// JSON documents in the value are masked as documents, unless an exemption turns
		// some detectors off for this value: the walker of a nested document does not know it.
		nested := !w.m.hasExemptions || !w.exemptsSome(*c)
		w.tedits = w.textEdits(w.tedits[:0], text, c, nested)
	}
	if len(argv) > 0 {
		w.tedits = withArgvFindings(w.tedits, argv)
	}
	if len(w.tedits) > 0 {
		w.spliceEdits(i, end, esc, text, w.tedits)
	}
}

// maskSpans appends text to dst with the spans replaced by placeholders.
func (w *walker) maskSpans(dst, text []byte, spans []span) []byte {
	prev := 0
	for _, s := range spans {
		dst = append(dst, text[prev:s.start]...)
		dst = w.h.appendPlain(dst, text[s.start:s.end])
		w.record(s.id)
		prev = s.end
	}
	return append(dst, text[prev:]...)
}

// binaryValue masks a value of ConfigMap binaryData: wholly when its key sounds secret or the
// detectors find a credential in the decoded bytes. A value that is not base64 is masked.
func (w *walker) binaryValue(i, end int, esc bool, c vctx) {
	if w.m.hasExemptions && w.exempt(c, -1) {
		return
	}
	v := w.text(i, end, esc)
	if classifyKey(c.key) != keyPlain && !w.m.disabled[idKeywordEntropy] {
		w.hide(i, end, esc, idKeywordEntropy, hideBase64)
		return
	}
	dec, err := w.decodeBase64(v)
	if err != nil {
		w.hide(i, end, esc, idSecretData, hidePlain)
		return
	}
	// The value is masked whole when anything in it would be: the edits only name the reason.
	logLen := len(w.log)
	w.tedits = w.textEdits(w.tedits[:0], dec, &c, !w.m.hasExemptions || !w.exemptsSome(c))
	if len(w.tedits) == 0 {
		w.log = w.log[:logLen]
		return
	}
	id := w.firstID(w.tedits, logLen)
	w.log = w.log[:logLen]
	w.hide(i, end, esc, id, hideBase64)
}

// subWalker returns the walker for embedded documents, creating it.
func (w *walker) subWalker() *walker {
	if w.sub == nil {
		w.sub = newWalker(w.m)
		w.sub.level = w.level + 1
	}
	return w.sub
}

// lastApplied masks the last-applied-configuration annotation: the JSON document it holds is
// masked with the same rules and encoded again. A value that does not parse is replaced.
func (w *walker) lastApplied(i, end int, esc bool, c vctx) {
	text := w.text(i, end, esc)
	if len(bytes.TrimSpace(text)) == 0 {
		return
	}
	if w.level >= maxEmbedded {
		w.hide(i, end, esc, idLastApplied, hidePlain)
		return
	}
	s := w.subWalker()
	s.onSecret = w.onSecret
	if w.itemRec != nil && w.itemIn.n == 0 {
		// The values its document passes to the hook are recorded where they are in it.
		s.itemRec, s.itemIn = w.itemRec, itemString{off: i - w.itemRec.start, n: end - i, esc: esc}
		defer func() { s.itemRec, s.itemIn = nil, itemString{} }()
	}
	s.in = append(s.in[:0], text...)
	hint := w.target
	if c.obj >= 0 {
		hint = w.objs[c.obj].t
	}
	hint.confirmed = false
	s.reset(s.dst[:0], s.in, w.target)
	s.posDep = w.posDep
	s.log = s.log[:0]
	e, err := s.document(0, hint)
	if err == nil && skipSpace(s.src, e) != len(s.src) {
		err = malformed(e, "data after the document")
	}
	if err != nil {
		w.hide(i, end, esc, idLastApplied, hidePlain)
		return
	}
	if len(s.log) == 0 {
		return
	}
	w.replace(i, end, s.finish())
	w.log = append(w.log, s.log...)
}
