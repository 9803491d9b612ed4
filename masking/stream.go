package masking

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/jsonlex"
)

// Reader reads a masked stream: a watch stream masked event by event, or a text stream masked
// line by line. Its memory is bounded by Limits, whatever the length of the stream. Reading
// stops at the first error of the source or the first event that cannot be masked; the error
// (wrapping ErrMalformed or ErrTooLarge, or the source's error) is returned after the output of
// the events before it, and no byte of the faulty event is returned.
//
// Read and Close must not be called concurrently; Stats may be called at any time.
type Reader struct {
	src  io.Reader
	fill func(r *Reader) error // appends output to r.out
	out  []byte
	off  int
	err  error
	w    *walker
	// bufs, when set, is where out comes from when fill has output for it, and where it goes
	// back as soon as it is read, so that a stream waiting for input holds no output buffer.
	// outBox is what out came from the pool in (a pooled buffer goes back in the same box, so
	// handing one back allocates nothing).
	bufs   *bufferPool
	outBox *[]byte
	// release, when set, hands the stream's input buffer back once it ended.
	release func()

	mu     sync.Mutex
	fields int
	counts map[string]int
}

var _ io.ReadCloser = (*Reader)(nil)

// Read reads masked output.
func (r *Reader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		if r.err != nil {
			r.end()
			return 0, r.err
		}
		r.out, r.off = r.out[:0], 0
		err := r.fill(r)
		r.account()
		if err != nil {
			r.err = err
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	if r.off == len(r.out) && r.bufs != nil {
		// Everything masked so far is read: the output buffer goes back until there is
		// more, so that a watch waiting for its next event holds none.
		r.putOut()
	}
	return n, nil
}

// takeOut gives r an output buffer from its pool.
func (r *Reader) takeOut() {
	r.outBox = r.bufs.get()
	r.out = *r.outBox
}

// putOut hands r's output buffer back to its pool; r.out is empty afterwards.
func (r *Reader) putOut() {
	if r.outBox != nil {
		*r.outBox = r.out
		r.bufs.put(r.outBox)
		r.outBox = nil
	}
	r.out, r.off = nil, 0
}

// Close closes the source if it is an io.Closer.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("masking: read from closed stream")
	}
	r.end()
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// end hands back what the stream no longer needs once it ended (r.err is set, so fill is not
// called again).
func (r *Reader) end() {
	r.putOut()
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// bufferPool holds a Masker's buffers of stream output and input that no stream uses, for the
// next streams: a watch would otherwise allocate both afresh, and a busy stream its output
// buffer for every batch. Only what a stream no longer refers to is put back; nothing reads past
// the length of what it wrote into one, so nothing of an earlier stream can reach a later one.
type bufferPool struct{ pool sync.Pool }

// streamBufferSize is the size of a new stream buffer: an output batch (batchBytes) or the
// first input buffer of a stream.
const streamBufferSize = 32 << 10

// get returns an empty buffer of streamBufferSize bytes' capacity, in a box that put takes
// back.
func (p *bufferPool) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, streamBufferSize)
	return &b
}

// put keeps the buffer in box b for reuse if it has the size of a new one (an output buffer
// that grew is left to the collector): an idle watch's input buffer is never larger than
// before. The caller must not use b or its buffer again.
func (p *bufferPool) put(b *[]byte) {
	if cap(*b) != streamBufferSize {
		return
	}
	*b = (*b)[:0]
	p.pool.Put(b)
}

// Stats returns what was masked so far.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Fields: r.fields}
	if len(r.counts) > 0 {
		s.Detectors = make(map[string]int, len(r.counts))
		for k, v := range r.counts {
			s.Detectors[k] = v
		}
	}
	return s
}

// account moves the walker's log into the cumulative counts.
func (r *Reader) account() {
	if len(r.w.log) == 0 {
		return
	}
	r.mu.Lock()
	if r.counts == nil {
		r.counts = make(map[string]int, 4)
	}
	for _, id := range r.w.log {
		r.counts[r.w.m.names[id]]++
	}
	r.fields += len(r.w.log)
	r.mu.Unlock()
	r.w.log = r.w.log[:0]
}

// inbuf is the input buffer of a stream: buf[start:end] is read but not yet consumed.
type inbuf struct {
	buf        []byte
	start, end int
	eof        bool
	empty      int         // consecutive reads that returned nothing
	reads      uint64      // calls of read: buf[:end] may have changed when it changed
	bufs       *bufferPool // if set, the first buffer comes from it, and goes back with release
	box        *[]byte     // the pool's box of buf, while buf is the buffer from the pool
}

// release hands the buffer back to its pool; b is not used again.
func (b *inbuf) release() {
	if b.box != nil {
		*b.box = b.buf
		b.bufs.put(b.box)
		b.box = nil
	}
	b.buf, b.start, b.end = nil, 0, 0
}

// maxEmptyReads is how many reads without data or error a source may return in a row, as in
// bufio.
const maxEmptyReads = 100

func (b *inbuf) avail() []byte { return b.buf[b.start:b.end] }

// read reads more input, growing the buffer up to limit bytes of unconsumed input.
func (b *inbuf) read(src io.Reader, limit int) error {
	b.reads++
	if b.start > 0 && (b.end == len(b.buf) || b.start > len(b.buf)/2) {
		n := copy(b.buf, b.buf[b.start:b.end])
		b.start, b.end = 0, n
	}
	if b.end == len(b.buf) {
		if len(b.buf) >= limit {
			return fmt.Errorf("%w: more than %d bytes without an end", ErrTooLarge, limit)
		}
		size := min(limit, max(2*len(b.buf), streamBufferSize))
		var nb []byte
		if len(b.buf) == 0 && size == streamBufferSize && b.bufs != nil {
			b.box = b.bufs.get()
			nb = (*b.box)[:streamBufferSize]
		} else {
			nb = make([]byte, size)
			b.box = nil // the pool's buffer, if it was one, is left to the collector
		}
		copy(nb, b.buf[b.start:b.end])
		b.buf, b.end, b.start = nb, b.end-b.start, 0
	}
	n, err := src.Read(b.buf[b.end:])
	b.end += n
	switch {
	case err == io.EOF:
		b.eof = true
	case errors.Is(err, context.Canceled):
		// The client went away (a closed watch): pass the cause on as it is, as readers
		// such as httputil.ReverseProxy expect it.
		return context.Canceled
	case err != nil:
		return fmt.Errorf("masking: reading stream: %w", err)
	case n == 0:
		if b.empty++; b.empty >= maxEmptyReads {
			return io.ErrNoProgress
		}
		return nil
	}
	b.empty = 0
	return nil
}

// WatchStream masks a watch stream of JSON events (one JSON object per event, as the API
// server writes them, newline-separated or not) as it passes: each event is masked and returned
// as soon as its last byte has been read, followed by a newline. t is the request's type hint
// for the events' objects. The source must not be compressed (wrap it in a gzip.Reader, or use
// Stream).
func (m *Masker) WatchStream(r io.Reader, t Target) *Reader {
	return m.docStream(r, t, watchEventType, m.limits.MaxEventBytes, true)
}

// docStream masks a stream of JSON documents (objects or arrays) one by one, each with the type
// hint root, each at most limit bytes. With walkFirst, a document that starts in the input at
// hand is masked straight away, the walker finding where it ends (leadingDocument); when it
// does not end there (or does not mask) the splitter finds its end as without walkFirst, which
// the tests use to compare the two.
func (m *Masker) docStream(r io.Reader, t Target, root objType, limit int, walkFirst bool) *Reader {
	w := newWalker(m)
	w.target = m.targetType(t)
	w.onSecret = t.SecretValue
	in := inbuf{bufs: &m.streamBufs}
	var split splitter
	var ahead lookAhead
	rd := &Reader{src: r, w: w, bufs: &m.streamBufs}
	rd.release = in.release
	rd.fill = func(rd *Reader) error {
		for {
			avail := in.avail()
			if !split.Started() {
				lead := skipSpace(avail, 0)
				in.start += lead
				avail = avail[lead:]
				if len(avail) > 0 && avail[0] != '{' && avail[0] != '[' {
					return malformed(in.start, "document is not an object or array")
				}
			}
			if len(avail) > 0 && walkFirst && !split.Started() {
				if rd.out == nil {
					rd.takeOut()
				}
				n, logged := len(rd.out), len(w.log)
				if ahead.reads != in.reads {
					ahead = lookAhead{reads: in.reads}
				}
				if out, end, ok := w.leadingDocument(rd.out, in.buf[:in.end], in.start, root, &ahead); ok {
					rd.out = append(out, '\n')
					in.start = end
					if len(rd.out) < batchBytes {
						continue
					}
					return nil
				}
				// Incomplete, or it does not mask: nothing of this attempt counts (the output
				// buffer may hold its bytes past len(rd.out), which nothing reads), and the
				// splitter takes over for this document.
				w.log = w.log[:logged]
				rd.out = rd.out[:n]
				if n == 0 {
					rd.putOut() // a watch waiting for the rest of an event holds no output buffer
				}
			}
			if len(avail) > 0 {
				end, err := split.scan(avail)
				if err != nil {
					return err
				}
				if end > 0 {
					if rd.out == nil {
						rd.takeOut()
					}
					n := len(rd.out)
					out, err := w.event(rd.out, avail[:end], root)
					if err != nil {
						w.log = w.log[:0]
						rd.out = rd.out[:n] // the events before it go out first, then the error
						return err
					}
					rd.out = append(out, '\n')
					in.start += end
					if len(rd.out) < batchBytes {
						// Events that arrived together leave together (one write and one flush
						// downstream instead of one per event); none waits for more input.
						continue
					}
					return nil
				}
			}
			if len(rd.out) > 0 {
				return nil // what is left is incomplete: hand out what is masked
			}
			if in.eof {
				if len(avail) > 0 {
					return errEOF
				}
				return io.EOF
			}
			if len(avail) > limit {
				return fmt.Errorf("%w: JSON document exceeds %d bytes", ErrTooLarge, limit)
			}
			if err := in.read(r, limit+1); err != nil {
				return err
			}
		}
	}
	return rd
}

// batchBytes is how much masked output a stream gathers from input it already has before it
// hands it out.
const batchBytes = 32 << 10

// splitter finds where a JSON document ends in a stream, resumably across reads, with the
// lexer's Splitter. The walker validates the document it delimits.
type splitter struct {
	jsonlex.Splitter
	pos int // bytes of the current document scanned so far
}

// scan continues over b, which starts with the current document, and returns the length of
// the document once it is complete, or 0.
func (s *splitter) scan(b []byte) (int, error) {
	n, done, err := s.Scan(b[s.pos:])
	if err != nil {
		var se *jsonlex.SyntaxError
		if errors.As(err, &se) {
			err = malformed(s.pos+se.Offset, se.Msg)
		}
		s.pos = 0
		return 0, err
	}
	if !done {
		s.pos = len(b)
		return 0, nil
	}
	end := s.pos + n
	s.pos = 0
	return end, nil
}

// lookAhead keeps a walker's answers to where the next Helm release type and the next escape
// are in a stream's input buffer from one document to the next, while the buffer does not
// change (reads is the inbuf's count of reads when they were found): each search reads to the
// end of the input at hand, and the buffer can hold many documents.
type lookAhead struct {
	reads              uint64
	helmTypes, escapes nextIndex
}

// leadingDocument masks the JSON document at src[start:], whose type hint is root, into dst, if
// it ends in src: it returns the output, the index after the document, and ok. Anything else
// (the document does not end in src, or is malformed, or would exceed the restart budget of the
// document alone) returns !ok, and dst as it was; the caller then delimits the document with
// the splitter and masks it with event, which gives what masking it alone gives, errors
// included. ahead holds the walker's searches in src from the documents before this one (src
// the same bytes), and takes this one's.
//
// The result is what event gives for src[start:end]: the walker delimits what it walks by its
// structure (a value ends at its closing bracket or quote), and its only reading beyond a
// value, the search for a Helm release type (helmSecretType), is a pre-filter after which the
// object's own members decide, so input before and after the document changes nothing but the
// restart budget, which is checked against the document's own.
func (w *walker) leadingDocument(dst, src []byte, start int, root objType, ahead *lookAhead) (out []byte, end int, ok bool) {
	w.reset(dst, src, w.target)
	w.mark = start
	w.helmTypes, w.escapes = ahead.helmTypes, ahead.escapes
	end, err := w.document(start, root)
	ahead.helmTypes, ahead.escapes = w.helmTypes, w.escapes
	// The budget of src[start:end] alone is len(src)-(end-start) less than that of src.
	if err != nil || w.budget < len(src)-(end-start) {
		w.src, w.dst = nil, nil
		return dst, 0, false
	}
	w.flush(end)
	out = w.dst
	w.src, w.dst = nil, nil
	return out, end, true
}

// event masks the document src, whose type hint is root, into dst.
func (w *walker) event(dst, src []byte, root objType) ([]byte, error) {
	w.reset(dst, src, w.target)
	end, err := w.document(0, root)
	if err == nil && end != len(src) {
		err = malformed(end, "data after the event")
	}
	if err != nil {
		return dst, err
	}
	out := w.finish()
	w.src, w.dst = nil, nil
	return out, nil
}

// lineOverlap is how much of an overlong line a text stream keeps back for the next chunk, so
// that a secret cut by the chunk boundary is still found whole.
const lineOverlap = 4 << 10

// TextStream masks a text stream (pod logs, `logs -f`, exec output) line by line with the
// detectors. A line is held back until its newline arrives; a line longer than
// Limits.MaxLineBytes is masked in chunks cut at blanks where possible, keeping a possible
// secret at the cut whole in the next chunk. A private key block (BEGIN … PRIVATE KEY … END,
// or a PuTTY key file) is held back until its end and masked whole; when it outgrows
// Limits.MaxLineBytes it is replaced by one placeholder and its remaining lines are dropped up
// to its end. An indented JSON record (a line that ends with { or [, then lines that look like
// JSON) is held back until it closes and masked as a document; when it outgrows
// Limits.MaxLineBytes, or a line does not look like JSON, what was held is masked as text.
//
// Because a partial line is held back, a prompt without a newline (an interactive shell's) is
// only seen when the line completes or the stream ends.
func (m *Masker) TextStream(r io.Reader) *Reader {
	w := newWalker(m)
	t := &textStream{w: w, max: m.limits.MaxLineBytes}
	return &Reader{src: r, w: w, fill: func(rd *Reader) error {
		for {
			avail := t.in.avail()
			produced := false
			for {
				i := bytes.IndexByte(avail[t.scanned:], '\n')
				if i < 0 {
					t.scanned = len(avail)
					break
				}
				line := avail[:t.scanned+i+1]
				rd.out = t.line(rd.out, line)
				t.in.start += len(line)
				t.scanned = 0
				avail = t.in.avail()
				produced = true
			}
			if produced {
				return nil
			}
			if t.in.eof {
				rd.out = t.line(rd.out, avail)
				t.in.start = t.in.end
				rd.out = t.flushBlock(rd.out)
				return io.EOF
			}
			if len(avail) >= t.max {
				n := t.cut(avail[:t.max])
				rd.out = t.line(rd.out, avail[:n])
				t.in.start += n
				t.scanned = 0
				return nil
			}
			if err := t.in.read(r, t.max); err != nil {
				return err
			}
		}
	}}
}

// textStream is the state of a TextStream.
type textStream struct {
	w        *walker
	max      int
	in       inbuf
	scanned  int       // avail()[:scanned] has no newline
	block    []byte    // lines held back: a private key block or a JSON document
	kind     blockKind // what is held back
	depth    int       // JSON: the nesting depth at the end of the held lines
	overflow bool      // the key block outgrew max and was replaced; drop lines up to its end
}

// blockKind says what a text stream holds back until it is complete.
type blockKind uint8

const (
	noBlock    blockKind = iota
	pemBlock             // BEGIN … PRIVATE KEY … END
	puttyBlock           // PuTTY-User-Key-File … Private-MAC
	jsonBlock            // a JSON document over several lines (an indented log record)
)

var (
	pemBegin   = []byte("-----BEGIN")
	pemEnd     = []byte("-----END")
	pemKey     = []byte("PRIVATE KEY")
	puttyBegin = []byte("PuTTY-User-Key-File-")
	puttyEnd   = []byte("Private-MAC:")
)

// line masks one line (or chunk) and appends it to out. Private key blocks are held back to
// their end and masked whole; so are JSON documents written over several lines, so that a
// credential document in them is recognised as one.
func (t *textStream) line(out, line []byte) []byte {
	if len(line) == 0 {
		return out
	}
	switch t.kind {
	case pemBlock, puttyBlock:
		end := pemEnd
		if t.kind == puttyBlock {
			end = puttyEnd
		}
		if t.overflow {
			if bytes.Contains(line, end) {
				t.kind, t.overflow = noBlock, false
			}
			return out
		}
		t.block = append(t.block, line...)
		if bytes.Contains(line, end) {
			return t.flushBlock(out)
		}
		if len(t.block) > t.max {
			out = t.w.h.appendPlain(out, t.block)
			out = append(out, '\n')
			if t.kind == pemBlock {
				t.w.record(idPEM)
			} else {
				t.w.record(formatIDPutty)
			}
			t.block = t.block[:0]
			t.overflow = true
		}
		return out
	case jsonBlock:
		if !continuesJSON(line) || opensKeyBlock(line) {
			// Not a JSON document after all: mask what was held as text. A key block's
			// first line continues JSON as a negative number or a string would; it starts
			// a key block all the same, or the key would be masked line by line.
			out = t.flushBlock(out)
			return t.line(out, line)
		}
		t.block = append(t.block, line...)
		t.depth += jsonDepth(line)
		if t.depth <= 0 || len(t.block) > t.max {
			return t.flushBlock(out)
		}
		return out
	}
	if i := bytes.Index(line, pemBegin); i >= 0 {
		rest := line[i:]
		if bytes.Contains(rest, pemKey) && !bytes.Contains(rest, pemEnd) {
			out = t.w.maskTextBytes(out, line[:i])
			t.kind = pemBlock
			t.block = append(t.block[:0], rest...)
			return out
		}
	}
	if i := bytes.Index(line, puttyBegin); i >= 0 && !bytes.Contains(line[i:], puttyEnd) {
		out = t.w.maskTextBytes(out, line[:i])
		t.kind = puttyBlock
		t.block = append(t.block[:0], line[i:]...)
		return out
	}
	if opensJSON(line) {
		if d := jsonDepth(line); d > 0 {
			t.kind, t.depth = jsonBlock, d
			t.block = append(t.block[:0], line...)
			return out
		}
	}
	return t.w.maskTextBytes(out, line)
}

// opensKeyBlock reports whether line starts a private key block that it does not end.
func opensKeyBlock(line []byte) bool {
	if i := bytes.Index(line, pemBegin); i >= 0 {
		rest := line[i:]
		if bytes.Contains(rest, pemKey) && !bytes.Contains(rest, pemEnd) {
			return true
		}
	}
	i := bytes.Index(line, puttyBegin)
	return i >= 0 && !bytes.Contains(line[i:], puttyEnd)
}

// flushBlock masks and appends what is held back.
func (t *textStream) flushBlock(out []byte) []byte {
	if t.kind == noBlock {
		return out
	}
	t.kind = noBlock
	if t.overflow {
		t.overflow = false
		return out
	}
	out = t.w.maskTextBytes(out, t.block)
	t.block = t.block[:0]
	return out
}

// opensJSON reports whether a line ends with an opening brace or bracket: the first line of an
// indented JSON document.
func opensJSON(line []byte) bool {
	l := bytes.TrimRight(line, " \t\r\n")
	return len(l) > 0 && (l[len(l)-1] == '{' || l[len(l)-1] == '[')
}

// continuesJSON reports whether a line can be part of an indented JSON document.
func continuesJSON(line []byte) bool {
	l := bytes.TrimLeft(line, " \t")
	if len(l) == 0 {
		return true
	}
	switch c := l[0]; {
	case c == '"', c == '{', c == '}', c == '[', c == ']', c == '-', c == '\n', c == '\r', isDigit(c):
		return true
	case bytes.HasPrefix(l, []byte("true")), bytes.HasPrefix(l, []byte("false")), bytes.HasPrefix(l, []byte("null")):
		return true
	}
	return false
}

// jsonDepth returns by how much a line opens JSON objects and arrays, outside strings.
func jsonDepth(line []byte) int {
	d := 0
	inStr := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
		case c == '}' || c == ']':
			d--
		}
	}
	return d
}

// cut returns where to cut an overlong line chunk: after the last blank in its second half, or
// lineOverlap bytes before its end, moved back to the start of a secret that would be cut.
func (t *textStream) cut(chunk []byte) int {
	cut := len(chunk) - lineOverlap
	if i := bytes.LastIndexAny(chunk[len(chunk)/2:], " \t"); i >= 0 {
		cut = len(chunk)/2 + i + 1
	}
	w := t.w
	w.spans = w.m.eng.find(w, chunk, w.trig, w.spans)
	for _, s := range w.spans {
		if s.start < cut && (s.end > cut || s.end == len(chunk)) {
			cut = s.start
		}
	}
	if cut <= 0 {
		cut = len(chunk)
	}
	return cut
}

// Stream masks a streamed response body given its Content-Type and Content-Encoding headers:
// JSON document by document as each completes (a watch, when t.Watch is set or the type says
// ;stream=watch, event by event as WatchStream does; the API server labels JSON watches plain
// application/json), text/plain line by line (TextStream). gzip is decompressed; the output is
// never compressed. It returns ErrUnmaskable for the types Body refuses, and passes other types
// through unchanged when !NeedsMasking(t). Nothing is read from r before the first Read.
func (m *Masker) Stream(contentType, contentEncoding string, r io.Reader, t Target) (*Reader, error) {
	switch enc := strings.ToLower(strings.TrimSpace(contentEncoding)); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		r = &gzipReader{src: r}
	default:
		return nil, fmt.Errorf("%w: content encoding %q", ErrUnmaskable, enc)
	}
	mt, watch := parseContentType(contentType)
	switch {
	case mt == mediaJSON && (watch || t.Watch):
		return m.WatchStream(r, t), nil
	case mt == mediaJSON:
		return m.docStream(r, t, m.targetType(t), int(min(m.limits.MaxBodyBytes, maxInt)), true), nil
	case mt == mediaText:
		return m.TextStream(r), nil
	case mt == mediaUnknown && !m.NeedsMasking(t):
		w := newWalker(m)
		return &Reader{src: r, w: w, fill: func(rd *Reader) error {
			if cap(rd.out) == 0 {
				rd.out = make([]byte, 0, 32<<10)
			}
			n, err := r.Read(rd.out[:cap(rd.out)])
			rd.out = rd.out[:n]
			return err
		}}, nil
	}
	return nil, fmt.Errorf("%w: content type %q", ErrUnmaskable, contentType)
}

const maxInt = int64(^uint(0) >> 1)

// gzipReader decompresses lazily, so that creating a Stream reads nothing, and reports corrupt
// data as ErrMalformed.
type gzipReader struct {
	src io.Reader
	zr  *gzip.Reader
}

func (g *gzipReader) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(g.src)
		if err != nil {
			return 0, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	return n, err
}

// Close closes the source if it is an io.Closer.
func (g *gzipReader) Close() error {
	if c, ok := g.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
