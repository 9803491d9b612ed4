package proxy

import (
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// sessionValues keeps, per session, the values of the Secrets the session read through the proxy
// (recording.Values), so that its exec and attach sessions mask them when a command prints them.
// It holds at most maxValueSessions sessions, forgetting those unused longest; values live in
// memory only.
type sessionValues struct {
	mu sync.Mutex
	m  map[string]*valueSession
	// batches holds *recording.Batch for responses masked whole.
	batches sync.Pool
}

type valueSession struct {
	values  *recording.Values
	lastUse time.Time
}

const maxValueSessions = 10_000

func newSessionValues() *sessionValues {
	return &sessionValues{m: map[string]*valueSession{}}
}

// of returns the values of a session, creating the set.
func (s *sessionValues) of(session string) *recording.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs, ok := s.m[session]
	if !ok {
		if len(s.m) >= maxValueSessions {
			s.forgetOldest()
		}
		vs = &valueSession{values: &recording.Values{}}
		s.m[session] = vs
	}
	vs.lastUse = time.Now()
	return vs.values
}

func (s *sessionValues) forgetOldest() {
	var oldest string
	var at time.Time
	for id, vs := range s.m {
		if oldest == "" || vs.lastUse.Before(at) {
			oldest, at = id, vs.lastUse
		}
	}
	delete(s.m, oldest)
}

// isSecrets reports a request for core Secrets, whose responses carry the values to keep.
func isSecrets(t masking.Target) bool {
	return t.Resource == "secrets" && t.Group == "" && t.Subresource == ""
}

// hook returns the masker's SecretValue hook for a response to st: it keeps the values of the
// Secrets in the response (a Secret, a list, a watch event, a Table with objects) for the
// request's session, as the masker replaces them, with the placeholders the client sees. It
// returns nil when the request is not for Secrets or has no session. The hook looks up the
// session's set at its first value and keeps it: one hook serves one response (or one
// WebSocket message), called by one masking call at a time.
func (s *sessionValues) hook(st *requestState) func(value, placeholder []byte) {
	if st.session == "" || !isSecrets(st.target) {
		return nil
	}
	var values *recording.Values
	return func(v, placeholder []byte) {
		if !keepable(v) {
			return
		}
		if values == nil {
			values = s.of(st.session)
		}
		values.Add(v, placeholder)
	}
}

// Bounds of the batches of values collected from a response masked whole.
const (
	// maxBatchBytes is how much a batch collects before its values go to the session's set;
	// the rest of the response's values go into the emptied batch.
	maxBatchBytes = 4 << 20
	// maxPooledBatch is the largest batch buffer kept for the next response.
	maxPooledBatch = 2 * maxBatchBytes
	// minLaterBatchBytes is the size from which a batch's values are added to the session's set
	// while the response is sent (recording.Values.AddBatchLater) rather than before: for fewer
	// values, a goroutine costs more than it saves.
	minLaterBatchBytes = 64 << 10
)

// batchHook is the hook for a response masked whole (a Secret, a list, a Table): the hook collects
// the values in a recording.Batch, and flush adds them to the session's set in one step, which
// leaves the set exactly as adding them one by one would (a list of thousands of Secrets keeps
// only the newest values). The caller calls flush after the masking call, whether it succeeded
// or not, and before the response goes out: from then on, a reader of the set (an exec session
// masking its output) sees the values, though a large batch is added while the response is sent.
// Both are nil when hook would be.
func (s *sessionValues) batchHook(st *requestState) (hook func(value, placeholder []byte), flush func()) {
	if st.session == "" || !isSecrets(st.target) {
		return nil, nil
	}
	var b *recording.Batch
	addBatch := func() {
		if b.Len() > 0 {
			s.of(st.session).AddBatch(b)
		}
		b.Reset()
	}
	hook = func(v, placeholder []byte) {
		if !keepable(v) {
			return
		}
		if b == nil {
			b, _ = s.batches.Get().(*recording.Batch)
			if b == nil {
				b = &recording.Batch{}
			}
		}
		b.Add(v, placeholder)
		if b.Bytes() >= maxBatchBytes {
			addBatch()
		}
	}
	release := func(b *recording.Batch) {
		b.Reset()
		if b.Cap() <= maxPooledBatch {
			s.batches.Put(b)
		}
	}
	flush = func() {
		if b == nil {
			return
		}
		batch := b
		b = nil
		if batch.Bytes() < minLaterBatchBytes {
			s.of(st.session).AddBatch(batch)
			release(batch)
			return
		}
		// The set is locked for the batch before the response goes out, so that nothing
		// reads it without the batch's values; the values are added while the response is
		// sent.
		add := s.of(st.session).AddBatchLater(batch)
		go func() {
			add()
			release(batch)
		}()
	}
	return hook, flush
}

// keepable reports whether a Values set could keep v or a line of it: no value shorter than
// recording.MinValueBytes without spaces is worth keeping.
func keepable(v []byte) bool {
	return recording.TrimmedAtLeast(v, recording.MinValueBytes)
}
