package enricher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"

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

var (
	// wrapHead and wrapTail make a single event an EventList, the type the masker knows:
	// EventList items are audit events, whose requestObject and responseObject it masks with
	// the objectRef as type hint.
	wrapHead = []byte(`{"kind":"EventList","apiVersion":"` + auditAPIVersion + `","items":[`)
	wrapTail = []byte(`]}`)
)

// maskedBatch accumulates masked events and packs them into messages.
type maskedBatch struct {
	m      *masking.Masker
	origin string

	buf     []byte // masked events back to back
	offsets []int  // event i is buf[offsets[i]:offsets[i+1]], unless replaced
	stats   []eventStats
	scratch []byte
	short   map[int][]byte // events replaced by a shortened version
}

// newMaskedBatch returns an empty batch; sizeHint is the expected size of the masked events.
func newMaskedBatch(m *masking.Masker, origin string, sizeHint int) *maskedBatch {
	return &maskedBatch{m: m, origin: origin, offsets: []int{0}, buf: make([]byte, 0, sizeHint)}
}

func (b *maskedBatch) len() int { return len(b.stats) }

func (b *maskedBatch) event(i int) []byte {
	if ev, ok := b.short[i]; ok {
		return ev
	}
	return b.buf[b.offsets[i]:b.offsets[i+1]]
}

// add masks one raw event and appends it. An event the masker cannot handle whole (it exceeds
// a masking limit) is reduced to its metadata and masked again; an event that is not valid
// JSON fails with ErrMalformed. Events too large for one message lose their request and
// response objects.
func (b *maskedBatch) add(raw []byte) error {
	b.scratch = append(append(append(b.scratch[:0], wrapHead...), raw...), wrapTail...)
	start := len(b.buf)
	out, st, err := b.m.JSON(b.buf, b.scratch, masking.Target{})
	var es eventStats
	if err == nil {
		if !bytes.HasPrefix(out[start:], wrapHead) || !bytes.HasSuffix(out, wrapTail) {
			return fmt.Errorf("enricher: the masker changed the event envelope")
		}
		// Drop the envelope: move the event to the start of its slot.
		n := copy(out[start:], out[start+len(wrapHead):len(out)-len(wrapTail)])
		b.buf = out[:start+n]
		es = eventStats{Fields: st.Fields, Detectors: st.Detectors}
	} else {
		var ev auditEvent
		if json.Unmarshal(raw, &ev) != nil {
			return fmt.Errorf("%w: event %d: %w", ErrMalformed, b.len(), err)
		}
		// Valid JSON the masker refused (a limit): keep what identifies the request.
		stub, err := json.Marshal(metadataOnly(&ev, "masking failed: "+err.Error()))
		if err != nil {
			return err
		}
		b.scratch = append(append(append(b.scratch[:0], wrapHead...), stub...), wrapTail...)
		out, st, err := b.m.JSON(b.buf[:start], b.scratch, masking.Target{})
		if err != nil {
			return fmt.Errorf("enricher: mask the metadata of event %d: %w", b.len(), err)
		}
		n := copy(out[start:], out[start+len(wrapHead):len(out)-len(wrapTail)])
		b.buf = out[:start+n]
		es = eventStats{Fields: st.Fields, Detectors: st.Detectors, Truncated: true}
	}
	b.offsets = append(b.offsets, len(b.buf))
	b.stats = append(b.stats, es)
	return nil
}

// envelope returns events first..last-1 in the enricher's envelope, uncompressed.
func (b *maskedBatch) envelope(first, last int) []byte {
	size := len(messageHead) + 64
	for i := first; i < last; i++ {
		size += len(b.event(i)) + 16
	}
	msg := make([]byte, 0, size)
	msg = append(msg, messageHead...)
	msg = append(msg, `"origin":`...)
	msg = strconv.AppendQuote(msg, b.origin)
	msg = append(msg, `,"items":[`...)
	for i := first; i < last; i++ {
		if i > first {
			msg = append(msg, ',')
		}
		msg = append(msg, b.event(i)...)
	}
	msg = append(msg, `],"masking":[`...)
	for i := first; i < last; i++ {
		if i > first {
			msg = append(msg, ',')
		}
		msg = append(msg, statsJSON(b.stats[i])...)
	}
	return append(msg, "]}"...)
}

// packed returns the events as S2-compressed messages of at most maxBytes each: envelopes of
// consecutive events, halved until they fit. An event that does not fit a message on its own
// is shortened (see shorten) and marked truncated.
func (b *maskedBatch) packed(maxBytes int) ([][]byte, error) {
	var out [][]byte
	var pack func(first, last int) error
	pack = func(first, last int) error {
		msg := s2.Encode(nil, b.envelope(first, last))
		switch {
		case len(msg) <= maxBytes:
			out = append(out, msg)
			return nil
		case last-first > 1:
			mid := first + (last-first)/2
			if err := pack(first, mid); err != nil {
				return err
			}
			return pack(mid, last)
		case b.stats[first].Truncated && b.short[first] != nil:
			return fmt.Errorf("enricher: event %d does not fit a message even without its objects", first)
		}
		short, err := shorten(b.event(first), maxBytes/2)
		if err != nil {
			return err
		}
		if b.short == nil {
			b.short = map[int][]byte{}
		}
		b.short[first] = short
		b.stats[first].Truncated = true
		return pack(first, last)
	}
	// Messages of up to eight times maxBytes uncompressed: JSON compresses that well, and a
	// batch that does not is halved.
	limit := 8 * maxBytes
	for first := 0; first < b.len(); {
		last, size := first+1, len(b.event(first))
		for last < b.len() && size+len(b.event(last)) <= limit {
			size += len(b.event(last))
			last++
		}
		if err := pack(first, last); err != nil {
			return nil, err
		}
		first = last
	}
	return out, nil
}

// messages returns the events in one uncompressed envelope.
func (b *maskedBatch) messages() [][]byte {
	return [][]byte{b.envelope(0, b.len())}
}

func statsJSON(s eventStats) []byte {
	if s.Fields == 0 && !s.Truncated {
		return []byte("{}")
	}
	b, _ := json.Marshal(s) // a struct of ints, strings and bools cannot fail
	return b
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

// maskRawList masks a plain audit.k8s.io/v1 EventList the way the intake does and returns it
// in the enricher's envelope.
func maskRawList(m *masking.Masker, body []byte, origin string) ([]byte, int, error) {
	l, err := splitEventList(body)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if l.Kind != "EventList" || l.APIVersion != auditAPIVersion {
		return nil, 0, fmt.Errorf("%w: got kind %q, apiVersion %q, want EventList, %s", ErrMalformed, l.Kind, l.APIVersion, auditAPIVersion)
	}
	b := newMaskedBatch(m, origin, len(body)+len(body)/8)
	for _, it := range l.Items {
		if err := b.add(it); err != nil {
			return nil, 0, err
		}
	}
	return b.messages()[0], b.len(), nil
}

// now is time.Now, rounded to the millisecond stored in ingested_at.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
