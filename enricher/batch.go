package enricher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
	"github.com/gatehouse-dev/gatehouse/masking"
)

// Messages on trail.SubjectAuditBatch. The intake (and the file tailer) publish masked events
// in this envelope; the consumer also accepts plain audit.k8s.io/v1 EventLists, which it masks
// itself, so any other producer may publish raw batches there.
//
//	{"apiVersion":"enricher.gatehouse.dev/v1","kind":"MaskedEventList","origin":"webhook",
//	 "items":[<masked audit event>, ...],"masking":[<eventStats>, ...]}
//
// masking[i] tells what was masked in items[i]; items are the events as kube-apiserver sent
// them, with masked values replaced by placeholders and nothing else changed (except for
// truncated events, whose request and response objects were dropped).
const (
	messageAPIVersion = "enricher.gatehouse.dev/v1"
	messageKind       = "MaskedEventList"
	messageHead       = `{"apiVersion":"` + messageAPIVersion + `","kind":"` + messageKind + `",`

	// Origins of events.
	OriginWebhook = "webhook"
	OriginFile    = "file"

	auditAPIVersion = "audit.k8s.io/v1"

	// HeaderEncoding names a message's compression; "s2" (github.com/klauspost/compress/s2,
	// block format) for the intake's messages, absent for uncompressed ones.
	HeaderEncoding = "Content-Encoding"
	encodingS2     = "s2"
)

// Annotations the enricher adds to events it had to shorten. audit.k8s.io/truncated is the one
// kube-apiserver's own truncating backend sets.
const (
	AnnotationTruncated       = "audit.k8s.io/truncated"
	AnnotationTruncatedReason = "gatehouse.dev/truncated-reason"
)

// ErrMalformed is returned for a batch that is not a well-formed audit.k8s.io/v1 EventList.
var ErrMalformed = errors.New("enricher: malformed audit event batch")

// ErrMisplaced is returned for a trail record or a recording chunk that arrived on a subject its
// kind is not published on: a forgery by another component's credentials, or a copy made by a
// consumer's deliver subject. It is never stored.
var ErrMisplaced = errors.New("enricher: record on a subject of another kind")

var (
	// wrapHead and wrapTail make a single event an EventList, the type the masker knows:
	// EventList items are audit events, whose requestObject and responseObject it masks with
	// the objectRef as type hint.
	wrapHead = []byte(`{"kind":"EventList","apiVersion":"` + auditAPIVersion + `","items":[`)
	wrapTail = []byte(`]}`)
)

// packer masks events one at a time and packs them into messages: envelopes of consecutive
// events, S2-compressed, of at most maxBytes each, handed to emit as soon as one is full. It
// holds one message's events at a time, so a batch of any size costs the same memory. The same
// events always pack into the same messages, so a batch sent again gets the same message IDs.
type packer struct {
	m        *masking.Masker
	origin   string
	maxBytes int // compressed size limit of a message; 0: one uncompressed message (consumer)
	target   int // uncompressed size at which the events so far become a message
	emit     func(msg []byte) error
	observe  func(raw []byte) // sees every event as read, before masking; a test seam

	*packerBuffers
	short map[int][]byte // events replaced by a shortened version

	events, truncated, messages int // totals
}

// packerBuffers are the buffers a packer grows to a message's size: the masked events, their
// offsets and stats (those of the message being built), the event in its EventList wrapping, the
// envelope and its compressed form. An intake batch grows them to a few MiB, so the intake keeps
// them between batches (packerPool) instead of growing new ones for every POST.
type packerBuffers struct {
	buf     []byte // masked events back to back
	offsets []int  // event i is buf[offsets[i]:offsets[i+1]], unless replaced
	stats   []eventStats

	scratch, env, enc []byte
}

// packerPool keeps packerBuffers between batches. The zero value is ready to use.
type packerPool struct{ pool sync.Pool }

// maxPooledBuffer is the largest buffer a packerPool keeps: a few messages' worth. A batch with
// an event far larger than a message leaves its buffers to the garbage collector instead of
// holding on to them.
const maxPooledBuffer = 4 * messageTarget

// reusable reports whether b is small enough to keep.
func (b *packerBuffers) reusable() bool {
	return max(cap(b.buf), cap(b.scratch), cap(b.env), cap(b.enc)) <= maxPooledBuffer
}

// get returns buffers for a new packer: kept ones, emptied, or new.
func (pp *packerPool) get() *packerBuffers {
	if b, ok := pp.pool.Get().(*packerBuffers); ok {
		return b
	}
	return &packerBuffers{offsets: []int{0}}
}

// put keeps b for a later get; the packer that used it must not be used any more. The buffers
// hold masked events only, never a raw one: scratch, which held raw events, is cleared.
func (pp *packerPool) put(b *packerBuffers) {
	if !b.reusable() {
		return
	}
	clear(b.scratch[:cap(b.scratch)])
	clear(b.stats[:cap(b.stats)])
	b.buf, b.offsets, b.stats, b.scratch, b.env, b.enc = b.buf[:0], b.offsets[:1], b.stats[:0], b.scratch[:0], b.env[:0], b.enc[:0]
	pp.pool.Put(b)
}

// messageTarget is the uncompressed size at which the intake closes a message: audit JSON
// compresses five- to tenfold, so a message stays well below NATS' default 1 MB payload.
const messageTarget = 2 << 20

func newPacker(m *masking.Masker, origin string, maxBytes int, emit func([]byte) error) *packer {
	return newPackerWith(&packerBuffers{offsets: []int{0}}, m, origin, maxBytes, emit)
}

// newPackerWith returns a packer that uses bufs (from packerPool.get).
func newPackerWith(bufs *packerBuffers, m *masking.Masker, origin string, maxBytes int, emit func([]byte) error) *packer {
	return &packer{packerBuffers: bufs, m: m, origin: origin, maxBytes: maxBytes, target: messageTarget, emit: emit}
}

func (p *packer) pending() int { return len(p.stats) }

func (p *packer) event(i int) []byte {
	if ev, ok := p.short[i]; ok {
		return ev
	}
	return p.buf[p.offsets[i]:p.offsets[i+1]]
}

// add masks one raw event and adds it to the current message, emitting the message when it is
// full. cut is why the reader cut the event ("" when it is whole): such an event is marked
// truncated, as kube-apiserver's truncating backend marks it. An event the masker cannot
// handle whole (it exceeds a masking limit) is reduced to its metadata and masked again; an
// event that is not valid JSON fails with ErrMalformed.
func (p *packer) add(raw []byte, cut string) error {
	if p.observe != nil {
		p.observe(raw)
	}
	if cut != "" {
		marked, err := markTruncated(raw, cut)
		if err != nil {
			return err
		}
		raw = marked
	}
	p.scratch = append(append(append(p.scratch[:0], wrapHead...), raw...), wrapTail...)
	start := len(p.buf)
	out, st, err := p.m.JSON(p.buf, p.scratch, masking.Target{})
	var es eventStats
	if err == nil {
		if !bytes.HasPrefix(out[start:], wrapHead) || !bytes.HasSuffix(out, wrapTail) {
			return fmt.Errorf("enricher: the masker changed the event envelope")
		}
		// Drop the envelope: move the event to the start of its slot.
		n := copy(out[start:], out[start+len(wrapHead):len(out)-len(wrapTail)])
		p.buf = out[:start+n]
		es = eventStats{Fields: st.Fields, Detectors: st.Detectors, Truncated: cut != ""}
	} else {
		var ev auditEvent
		if json.Unmarshal(raw, &ev) != nil {
			return fmt.Errorf("%w: event %d: %w", ErrMalformed, p.events, err)
		}
		// Valid JSON the masker refused (a limit): keep what identifies the request.
		stub, err := json.Marshal(metadataOnly(&ev, "masking failed: "+err.Error()))
		if err != nil {
			return err
		}
		p.scratch = append(append(append(p.scratch[:0], wrapHead...), stub...), wrapTail...)
		out, st, err := p.m.JSON(p.buf[:start], p.scratch, masking.Target{})
		if err != nil {
			return fmt.Errorf("enricher: mask the metadata of event %d: %w", p.events, err)
		}
		n := copy(out[start:], out[start+len(wrapHead):len(out)-len(wrapTail)])
		p.buf = out[:start+n]
		es = eventStats{Fields: st.Fields, Detectors: st.Detectors, Truncated: true}
	}
	if es.Truncated {
		p.truncated++
	}
	p.events++
	p.offsets = append(p.offsets, len(p.buf))
	p.stats = append(p.stats, es)
	if p.maxBytes > 0 && len(p.buf) >= p.target {
		return p.flush()
	}
	return nil
}

// flush emits the events added since the last flush as one or more messages.
func (p *packer) flush() error {
	if p.pending() == 0 {
		return nil
	}
	var err error
	if p.maxBytes == 0 {
		err = p.send(p.envelope(0, p.pending()))
	} else {
		err = p.pack(0, p.pending())
	}
	clear(p.stats)
	p.buf, p.offsets, p.stats, p.short = p.buf[:0], p.offsets[:1], p.stats[:0], nil
	return err
}

func (p *packer) send(msg []byte) error {
	p.messages++
	return p.emit(msg)
}

// pack emits events first..last-1 as compressed messages of at most maxBytes each: halved
// until they fit. An event that does not fit a message on its own is shortened (see shorten)
// and marked truncated.
func (p *packer) pack(first, last int) error {
	env := p.envelope(first, last)
	p.enc = s2.Encode(p.enc[:cap(p.enc)], env)
	switch {
	case len(p.enc) <= p.maxBytes:
		return p.send(p.enc)
	case last-first > 1:
		mid := first + (last-first)/2
		if err := p.pack(first, mid); err != nil {
			return err
		}
		return p.pack(mid, last)
	case p.stats[first].Truncated && p.short[first] != nil:
		return fmt.Errorf("enricher: event %d does not fit a message even without its objects", first)
	}
	short, err := shorten(p.event(first), p.maxBytes/2)
	if err != nil {
		return err
	}
	if p.short == nil {
		p.short = map[int][]byte{}
	}
	p.short[first] = short
	if !p.stats[first].Truncated {
		p.truncated++
	}
	p.stats[first].Truncated = true
	return p.pack(first, last)
}

// envelope returns events first..last-1 in the enricher's envelope, uncompressed, in a buffer
// reused by the next call.
func (p *packer) envelope(first, last int) []byte {
	msg := append(p.env[:0], messageHead...)
	msg = append(msg, `"origin":`...)
	msg = strconv.AppendQuote(msg, p.origin)
	msg = append(msg, `,"items":[`...)
	for i := first; i < last; i++ {
		if i > first {
			msg = append(msg, ',')
		}
		msg = append(msg, p.event(i)...)
	}
	msg = append(msg, `],"masking":[`...)
	for i := first; i < last; i++ {
		if i > first {
			msg = append(msg, ',')
		}
		msg = appendStats(msg, p.stats[i])
	}
	p.env = append(msg, "]}"...)
	return p.env
}

// markTruncated annotates an event its reader cut: audit.k8s.io/truncated, as kube-apiserver's
// truncating backend sets it, and the reason.
func markTruncated(event []byte, reason string) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(event, &fields); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ann := map[string]string{}
	if a, ok := fields["annotations"]; ok {
		_ = json.Unmarshal(a, &ann)
	}
	ann[AnnotationTruncated] = "true"
	ann[AnnotationTruncatedReason] = reason
	a, err := json.Marshal(ann)
	if err != nil {
		return nil, err
	}
	fields["annotations"] = a
	return json.Marshal(fields)
}

// appendStats appends s as encoding/json marshals it (detectors sorted by name), but "{}" when
// nothing was masked and nothing truncated.
func appendStats(dst []byte, s eventStats) []byte {
	if s.Fields == 0 && !s.Truncated {
		return append(dst, "{}"...)
	}
	dst = append(dst, '{')
	n := len(dst)
	if s.Fields != 0 {
		dst = strconv.AppendInt(append(dst, `"fields":`...), int64(s.Fields), 10)
	}
	if len(s.Detectors) > 0 {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"detectors":{`...)
		for i, k := range slices.Sorted(maps.Keys(s.Detectors)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(jsonlex.AppendQuoted(dst, []byte(k)), ':')
			dst = strconv.AppendInt(dst, int64(s.Detectors[k]), 10)
		}
		dst = append(dst, '}')
	}
	if s.Truncated {
		if len(dst) > n {
			dst = append(dst, ',')
		}
		dst = append(dst, `"truncated":true`...)
	}
	return append(dst, '}')
}

// shorten drops the request and response objects of a masked event, as kube-apiserver's
// truncating backend does, and if that is not enough keeps only its metadata.
func shorten(event []byte, limit int) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(event, &fields); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	delete(fields, "requestObject")
	delete(fields, "responseObject")
	ann := map[string]string{}
	if a, ok := fields["annotations"]; ok {
		_ = json.Unmarshal(a, &ann)
	}
	ann[AnnotationTruncated] = "true"
	ann[AnnotationTruncatedReason] = "event larger than " + strconv.Itoa(limit) + " bytes"
	a, err := json.Marshal(ann)
	if err != nil {
		return nil, err
	}
	fields["annotations"] = a
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if len(out) <= limit {
		return out, nil
	}
	var ev auditEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return json.Marshal(metadataOnly(&ev, "event larger than "+strconv.Itoa(limit)+" bytes"))
}

// metadataOnly returns what identifies an event's request, with long texts cut, for an event
// that cannot be stored whole.
func metadataOnly(ev *auditEvent, reason string) *auditEvent {
	cut := func(s string, n int) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	}
	out := &auditEvent{
		Level:                    ev.Level,
		AuditID:                  cut(ev.AuditID, 256),
		Stage:                    ev.Stage,
		RequestURI:               cut(ev.RequestURI, 4096),
		Verb:                     ev.Verb,
		User:                     userInfo{Username: cut(ev.User.Username, 1024), UID: ev.User.UID, Groups: ev.User.Groups},
		SourceIPs:                ev.SourceIPs,
		UserAgent:                cut(ev.UserAgent, 1024),
		ObjectRef:                ev.ObjectRef,
		RequestReceivedTimestamp: ev.RequestReceivedTimestamp,
		StageTimestamp:           ev.StageTimestamp,
		Annotations: map[string]string{
			AnnotationTruncated:       "true",
			AnnotationTruncatedReason: cut(reason, 1024),
		},
	}
	if ev.ImpersonatedUser != nil {
		out.ImpersonatedUser = &userInfo{
			Username: cut(ev.ImpersonatedUser.Username, 1024),
			UID:      ev.ImpersonatedUser.UID,
			Groups:   ev.ImpersonatedUser.Groups,
			Extra:    ev.ImpersonatedUser.Extra,
		}
	}
	if ev.ResponseStatus != nil {
		out.ResponseStatus = &responseStatus{Code: ev.ResponseStatus.Code, Status: ev.ResponseStatus.Status, Reason: ev.ResponseStatus.Reason}
	}
	return out
}

// wireBatch is a message as the consumer decodes it.
type wireBatch struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Origin     string       `json:"origin"`
	Items      []auditEvent `json:"items"`
	Masking    []eventStats `json:"masking"`
}

// maskList masks a batch that did not come from an intake of this deployment (an EventList,
// or an envelope whose MAC does not verify, published straight to NATS) event by event, as the
// intake does, and returns the events in the enricher's envelope, uncompressed, with origin.
func maskList(m *masking.Masker, data []byte, origin string, maxEvent int) ([]byte, int, error) {
	r := newEventListReader(bytes.NewReader(data), maxEvent)
	var msg []byte
	p := newPacker(m, origin, 0, func(b []byte) error {
		msg = bytes.Clone(b)
		return nil
	})
	for {
		ev, cut, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if err := p.add(ev, cut); err != nil {
			return nil, 0, err
		}
	}
	kind, apiVersion := r.typeMeta()
	if !(kind == "EventList" && apiVersion == auditAPIVersion) && !(kind == messageKind && apiVersion == messageAPIVersion) {
		return nil, 0, fmt.Errorf("%w: got kind %q, apiVersion %q, want EventList, %s", ErrMalformed, kind, apiVersion, auditAPIVersion)
	}
	if err := p.flush(); err != nil {
		return nil, 0, err
	}
	if msg == nil {
		msg = p.envelope(0, 0)
	}
	return msg, p.events, nil
}

// now is time.Now, rounded to the millisecond stored in ingested_at.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
