package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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
	masker Masker

	mu sync.Mutex
	m  map[string]*valueSession
}

type valueSession struct {
	values  *recording.Values
	lastUse time.Time
}

const maxValueSessions = 10_000

func newSessionValues(m Masker) *sessionValues {
	return &sessionValues{masker: m, m: map[string]*valueSession{}}
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

// collect keeps the values of the Secrets in a response body (a Secret, a list, a watch event or
// several, a Table with objects) for the request's session. It is called with the body before it
// is masked and never fails the request: what it cannot parse, it skips.
func (s *sessionValues) collect(st *requestState, body []byte) {
	if st.session == "" || !isSecrets(st.target) || len(body) == 0 {
		return
	}
	values := s.of(st.session)
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var doc secretDoc
		if err := dec.Decode(&doc); err != nil {
			return
		}
		doc.each(func(v []byte) {
			if !keepable(v) || values.Contains(v) {
				return
			}
			if ph, ok := s.placeholder(v); ok {
				values.Add(v, ph)
			}
		})
	}
}

// keepable reports whether a Values set could keep v or a line of it: no placeholder is worth
// computing for a value shorter than recording.MinValueBytes without spaces.
func keepable(v []byte) bool {
	return len(bytes.TrimSpace(v)) >= recording.MinValueBytes
}

// collectStream returns a reader of r that keeps the values of the Secrets in the watch events
// that pass through it.
func (s *sessionValues) collectStream(st *requestState, r io.ReadCloser) io.ReadCloser {
	if st.session == "" || !isSecrets(st.target) {
		return r
	}
	pr, pw := io.Pipe()
	go func() {
		dec := json.NewDecoder(pr)
		values := s.of(st.session)
		for {
			var doc secretDoc
			if err := dec.Decode(&doc); err != nil {
				// Keep reading, so that the stream is never held up by a document the decoder
				// did not take.
				_, _ = io.Copy(io.Discard, pr)
				return
			}
			doc.each(func(v []byte) {
				if keepable(v) && !values.Contains(v) {
					if ph, ok := s.placeholder(v); ok {
						values.Add(v, ph)
					}
				}
			})
		}
	}()
	return &teeCloser{r: r, w: pw}
}

type teeCloser struct {
	r io.ReadCloser
	w *io.PipeWriter
}

func (t *teeCloser) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		_, _ = t.w.Write(p[:n])
	}
	if err != nil {
		_ = t.w.Close()
	}
	return n, err
}

func (t *teeCloser) Close() error {
	_ = t.w.Close()
	return t.r.Close()
}

// placeholder returns the placeholder the masker gives a Secret's value: the one the client saw
// in the API's answer.
func (s *sessionValues) placeholder(v []byte) ([]byte, bool) {
	doc := fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Secret","data":{"v":"%s"}}`, base64.StdEncoding.EncodeToString(v))
	out, _, err := s.masker.Body("application/json", "", doc, masking.Target{Version: "v1", Resource: "secrets"})
	if err != nil {
		return nil, false
	}
	var masked struct {
		Data struct {
			V string `json:"v"`
		} `json:"data"`
	}
	if json.Unmarshal(out, &masked) != nil {
		return nil, false
	}
	ph, err := base64.StdEncoding.DecodeString(masked.Data.V)
	if err != nil || !masking.ContainsPlaceholder(ph) {
		return nil, false
	}
	return ph, true
}

// secretDoc is what collect reads of a Secret, a SecretList, a watch event or a Table.
type secretDoc struct {
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
	Items      []secretDoc       `json:"items"`
	Object     *secretDoc        `json:"object"`
	Rows       []struct {
		Object *secretDoc `json:"object"`
	} `json:"rows"`
}

func (d *secretDoc) each(f func([]byte)) {
	for _, v := range d.Data {
		if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) > 0 {
			f(b)
		}
	}
	for _, v := range d.StringData {
		f([]byte(v))
	}
	for i := range d.Items {
		d.Items[i].each(f)
	}
	if d.Object != nil {
		d.Object.each(f)
	}
	for _, r := range d.Rows {
		if r.Object != nil {
			r.Object.each(f)
		}
	}
}
