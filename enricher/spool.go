package enricher

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file holds the spool: the intake's durable queue on local disk. Every batch the intake
// (or the audit log follower) accepts is written to a file of its own, synced, and renamed into
// the queue before kube-apiserver is answered 200; a drainer publishes the queue to JetStream in
// order and deletes each file once JetStream acknowledged all of it. So a batch survives NATS
// being away, the enricher's own restart and a SIGKILL at any point:
//
//   - a batch being written is a *.part file: after a crash it is incomplete, was never
//     acknowledged (kube-apiserver sends it again) and is deleted when the spool opens;
//   - a committed file ends with a commit record naming its batch and message count; every
//     record carries a CRC-32C, so a torn or damaged file is detected when it is read and
//     moved aside (*.corrupt) instead of being published half;
//   - a batch already queued under the same ID (kube-apiserver retrying one whose answer it
//     never saw) is not queued twice, and JetStream deduplicates by the same message IDs.
//
// The spool is bounded: when its files reach the size limit, new batches are refused with
// ErrSpoolFull, and the intake answers 503 so that kube-apiserver keeps them and retries.
//
// File layout: an 8-byte magic, then records of [length u32][crc32c u32][type u8][payload]
// (length counts type and payload, the CRC covers them). A message record's payload is one
// JetStream message's data; the commit record's payload is the message count (u32) and the
// batch ID.

// ErrSpoolFull is returned when a batch does not fit the spool's size limit.
var ErrSpoolFull = errors.New("enricher: spool full")

// errSpoolCorrupt is returned for a spool file that is torn or damaged.
var errSpoolCorrupt = errors.New("spool file corrupt")

const (
	spoolMagic      = "GHSPOOL1"
	spoolSuffix     = ".batch"
	spoolPartSuffix = ".part"
	spoolBadSuffix  = ".corrupt"
	recMessage      = 1
	recCommit       = 2
	recHeaderSize   = 9
	// maxRecord bounds a record when reading, so a damaged length cannot make the reader
	// allocate without bound.
	maxRecord = 256 << 20
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// Committed files: <sequence>-<batch ID>.batch. Batch IDs are made of [a-z0-9-].
	spoolName = regexp.MustCompile(`^([0-9]{20})-([a-z0-9-]{1,200})\.batch$`)
	batchID   = regexp.MustCompile(`^[a-z0-9-]{1,200}$`)
)

// spoolEntry is a committed batch in the queue.
type spoolEntry struct {
	seq      uint64
	id       string
	size     int64
	created  time.Time
	messages int // from the commit record, once read
}

func (e spoolEntry) name() string {
	return fmt.Sprintf("%020d-%s%s", e.seq, e.id, spoolSuffix)
}

// spoolStats are the spool's figures for metrics and logs.
type spoolStats struct {
	Bytes, MaxBytes int64
	Batches         int
	Oldest          time.Time
}

// spool is an on-disk FIFO of batches. Writers and the drainer may run concurrently.
type spool struct {
	dir      string
	maxBytes int64
	lock     *os.File

	mu      sync.Mutex
	used    int64 // committed files plus bytes reserved by writers
	nextSeq uint64
	queue   []spoolEntry
	queued  map[string]bool // batch IDs in the queue
	notify  chan struct{}   // closed and replaced when a batch is committed

	// Buffers of finished writers (*bufio.Writer) and readers (*spoolReadBuffers), kept for
	// the next: every batch is written once and read twice.
	writeBufs, readBufs sync.Pool
}

// spoolBufferSize is the size of a spool file's write and read buffers.
const spoolBufferSize = 256 << 10

// spoolReadBuffers are a reader's buffers: the file's and the current record's.
type spoolReadBuffers struct {
	r   *bufio.Reader
	buf []byte
}

// spoolOpenReport says what opening the spool found.
type spoolOpenReport struct {
	Batches   int   // committed batches waiting to be published
	Bytes     int64 // their size
	Discarded int   // incomplete batches of a previous run, deleted
}

// openSpool opens (creating) the spool in dir, takes its lock so that no other process uses
// it, deletes incomplete batches of a previous run and queues the committed ones in order.
func openSpool(dir string, maxBytes int64) (*spool, spoolOpenReport, error) {
	var rep spoolOpenReport
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, rep, fmt.Errorf("enricher: spool directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, rep, fmt.Errorf("enricher: spool lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, rep, fmt.Errorf("enricher: spool %s is in use by another process: %w", dir, err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, lock: lock, queued: map[string]bool{}, notify: make(chan struct{}), nextSeq: 1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.close()
		return nil, rep, fmt.Errorf("enricher: spool directory: %w", err)
	}
	for _, de := range entries {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, spoolPartSuffix):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				s.close()
				return nil, rep, fmt.Errorf("enricher: remove incomplete spool file: %w", err)
			}
			rep.Discarded++
		case strings.HasSuffix(name, spoolSuffix):
			m := spoolName.FindStringSubmatch(name)
			if m == nil {
				continue
			}
			seq, _ := strconv.ParseUint(m[1], 10, 64)
			info, err := de.Info()
			if err != nil {
				continue
			}
			s.queue = append(s.queue, spoolEntry{seq: seq, id: m[2], size: info.Size(), created: info.ModTime()})
			s.queued[m[2]] = true
			s.used += info.Size()
			s.nextSeq = max(s.nextSeq, seq+1)
		}
	}
	slices.SortFunc(s.queue, func(a, b spoolEntry) int { return cmpUint(a.seq, b.seq) })
	rep.Batches, rep.Bytes = len(s.queue), s.used
	if rep.Discarded > 0 {
		if err := syncDir(dir); err != nil {
			s.close()
			return nil, rep, err
		}
	}
	return s, rep, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *spool) close() {
	if s.lock != nil {
		_ = s.lock.Close() // releases the flock
		s.lock = nil
	}
}

// stats returns the spool's current figures.
func (s *spool) stats() spoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := spoolStats{Bytes: s.used, MaxBytes: s.maxBytes, Batches: len(s.queue)}
	if len(s.queue) > 0 {
		st.Oldest = s.queue[0].created
	}
	return st
}

// reserve accounts n more bytes, or fails with ErrSpoolFull.
func (s *spool) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n > s.maxBytes {
		return fmt.Errorf("%w: %d of %d bytes in use", ErrSpoolFull, s.used, s.maxBytes)
	}
	s.used += n
	return nil
}

func (s *spool) release(n int64) {
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
}

// spoolWriter writes one batch.
type spoolWriter struct {
	s        *spool
	f        *os.File
	w        *bufio.Writer
	path     string
	size     int64 // bytes written and reserved
	messages int
	done     bool
	hdr      [recHeaderSize]byte
}

// create starts a batch. It fails with ErrSpoolFull when the spool is full already.
func (s *spool) create() (*spoolWriter, error) {
	if err := s.reserve(int64(len(spoolMagic))); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.dir, "batch-*"+spoolPartSuffix)
	if err != nil {
		s.release(int64(len(spoolMagic)))
		return nil, fmt.Errorf("enricher: spool: %w", err)
	}
	bw, ok := s.writeBufs.Get().(*bufio.Writer)
	if ok {
		bw.Reset(f)
	} else {
		bw = bufio.NewWriterSize(f, spoolBufferSize)
	}
	w := &spoolWriter{s: s, f: f, w: bw, path: f.Name(), size: int64(len(spoolMagic))}
	if _, err := w.w.WriteString(spoolMagic); err != nil {
		w.abort()
		return nil, fmt.Errorf("enricher: spool: %w", err)
	}
	return w, nil
}

func (w *spoolWriter) record(typ byte, parts ...[]byte) error {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	if err := w.s.reserve(int64(recHeaderSize - 1 + n)); err != nil {
		return err
	}
	w.size += int64(recHeaderSize - 1 + n)
	crc := crc32.Update(0, crcTable, []byte{typ})
	for _, p := range parts {
		crc = crc32.Update(crc, crcTable, p)
	}
	binary.LittleEndian.PutUint32(w.hdr[0:4], uint32(n))
	binary.LittleEndian.PutUint32(w.hdr[4:8], crc)
	w.hdr[8] = typ
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("enricher: spool: %w", err)
	}
	for _, p := range parts {
		if _, err := w.w.Write(p); err != nil {
			return fmt.Errorf("enricher: spool: %w", err)
		}
	}
	return nil
}

// append adds a message to the batch. It fails with ErrSpoolFull when the spool cannot hold it.
func (w *spoolWriter) append(msg []byte) error {
	if err := w.record(recMessage, msg); err != nil {
		return err
	}
	w.messages++
	return nil
}

// commit makes the batch durable under id and queues it: the commit record is written, the
// file synced, renamed into the queue and the directory synced. When a batch with the same ID is
// queued already, the new copy is dropped and duplicate is true. After commit, w is done.
func (w *spoolWriter) commit(id string) (duplicate bool, err error) {
	if !batchID.MatchString(id) {
		w.abort()
		return false, fmt.Errorf("enricher: spool: invalid batch ID %q", id)
	}
	var count [4]byte
	binary.LittleEndian.PutUint32(count[:], uint32(w.messages))
	if err := w.record(recCommit, count[:], []byte(id)); err != nil {
		w.abort()
		return false, err
	}
	if err := w.w.Flush(); err != nil {
		w.abort()
		return false, fmt.Errorf("enricher: spool: %w", err)
	}
	w.releaseBuffer()
	if err := w.f.Sync(); err != nil {
		w.abort()
		return false, fmt.Errorf("enricher: spool: sync: %w", err)
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		w.abort()
		return false, fmt.Errorf("enricher: spool: %w", err)
	}
	w.f = nil
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued[id] {
		w.done = true
		s.used -= w.size
		_ = os.Remove(w.path)
		return true, nil
	}
	e := spoolEntry{seq: s.nextSeq, id: id, size: w.size, created: time.Now(), messages: w.messages}
	if err := os.Rename(w.path, filepath.Join(s.dir, e.name())); err != nil {
		w.done = true
		s.used -= w.size
		_ = os.Remove(w.path)
		return false, fmt.Errorf("enricher: spool: %w", err)
	}
	w.done = true
	if err := syncDir(s.dir); err != nil {
		// The file is complete and named; only the rename's durability is in doubt. Keep it
		// queued, but tell the caller the batch may not survive a power loss.
		s.enqueue(e)
		return false, err
	}
	s.enqueue(e)
	return false, nil
}

// enqueue adds a committed entry; s.mu is held.
func (s *spool) enqueue(e spoolEntry) {
	s.nextSeq++
	s.queue = append(s.queue, e)
	s.queued[e.id] = true
	close(s.notify)
	s.notify = make(chan struct{})
}

// abort deletes an uncommitted batch and releases its space.
func (w *spoolWriter) abort() {
	if w.done {
		return
	}
	w.done = true
	w.releaseBuffer()
	if w.f != nil {
		_ = w.f.Close()
	}
	_ = os.Remove(w.path)
	w.s.release(w.size)
}

// releaseBuffer hands the write buffer back to the spool, its contents discarded; w writes no
// more.
func (w *spoolWriter) releaseBuffer() {
	if w.w == nil {
		return
	}
	w.w.Reset(nil)
	w.s.writeBufs.Put(w.w)
	w.w = nil
}

// head returns the oldest queued batch and a channel closed when another is queued.
func (s *spool) head() (spoolEntry, bool, <-chan struct{}) { return s.after(0) }

// after returns the oldest queued batch whose sequence is above seq (the oldest of all for 0)
// and a channel closed when another is queued.
func (s *spool) after(seq uint64) (spoolEntry, bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, _ := slices.BinarySearchFunc(s.queue, seq+1, func(e spoolEntry, seq uint64) int { return cmpUint(e.seq, seq) })
	if i == len(s.queue) {
		return spoolEntry{}, false, s.notify
	}
	return s.queue[i], true, s.notify
}

// remove deletes a published batch (the oldest) and releases its space. A deletion lost in a
// crash only means the batch is published again, and deduplicated.
func (s *spool) remove(e spoolEntry) error {
	err := os.Remove(filepath.Join(s.dir, e.name()))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	s.dequeue(e)
	return err
}

// quarantine moves a corrupt batch aside (name.corrupt) for inspection, and releases its space.
func (s *spool) quarantine(e spoolEntry) error {
	err := os.Rename(filepath.Join(s.dir, e.name()), filepath.Join(s.dir, e.name()+spoolBadSuffix))
	s.dequeue(e)
	return err
}

func (s *spool) dequeue(e spoolEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.queue, func(q spoolEntry) bool { return q.seq == e.seq })
	if i < 0 {
		return
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	delete(s.queued, e.id)
	s.used -= e.size
}

// spoolReader reads a committed batch's messages.
type spoolReader struct {
	s        *spool
	f        *os.File
	r        *bufio.Reader
	messages int
	buf      []byte
	hdr      [recHeaderSize]byte
}

// open opens a queued batch for reading.
func (s *spool) open(e spoolEntry) (*spoolReader, error) {
	f, err := os.Open(filepath.Join(s.dir, e.name()))
	if err != nil {
		return nil, fmt.Errorf("enricher: spool: %w", err)
	}
	r := &spoolReader{s: s, f: f}
	if b, ok := s.readBufs.Get().(*spoolReadBuffers); ok {
		b.r.Reset(f)
		r.r, r.buf = b.r, b.buf
	} else {
		r.r = bufio.NewReaderSize(f, spoolBufferSize)
	}
	var magic [len(spoolMagic)]byte
	if _, err := io.ReadFull(r.r, magic[:]); err != nil || string(magic[:]) != spoolMagic {
		r.close()
		return nil, fmt.Errorf("%w: %s: no spool header", errSpoolCorrupt, e.name())
	}
	return r, nil
}

// next returns the next message (valid until the next call), or io.EOF after a valid commit
// record for id. A torn or damaged file fails with errSpoolCorrupt.
func (r *spoolReader) next(id string) ([]byte, error) {
	// Read errors are formatted, not wrapped: a file that ends early must not look like the
	// clean end (io.EOF) of a batch.
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: record %d: %v", errSpoolCorrupt, r.messages, err)
	}
	n := int(binary.LittleEndian.Uint32(r.hdr[0:4]))
	crc := binary.LittleEndian.Uint32(r.hdr[4:8])
	typ := r.hdr[8]
	if n < 1 || n > maxRecord {
		return nil, fmt.Errorf("%w: record %d: length %d", errSpoolCorrupt, r.messages, n)
	}
	r.buf = slices.Grow(r.buf[:0], n-1)[:n-1]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		return nil, fmt.Errorf("%w: record %d: %v", errSpoolCorrupt, r.messages, err)
	}
	if crc32.Update(crc32.Update(0, crcTable, []byte{typ}), crcTable, r.buf) != crc {
		return nil, fmt.Errorf("%w: record %d: checksum mismatch", errSpoolCorrupt, r.messages)
	}
	switch typ {
	case recMessage:
		r.messages++
		return r.buf, nil
	case recCommit:
		if len(r.buf) < 4 || int(binary.LittleEndian.Uint32(r.buf)) != r.messages || string(r.buf[4:]) != id {
			return nil, fmt.Errorf("%w: commit record does not match the batch", errSpoolCorrupt)
		}
		if _, err := r.r.ReadByte(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: data after the commit record", errSpoolCorrupt)
		}
		return nil, io.EOF
	}
	return nil, fmt.Errorf("%w: record %d: unknown type %d", errSpoolCorrupt, r.messages, typ)
}

// close closes the file and hands the buffers back to the spool: a message next returned is
// not valid any more.
func (r *spoolReader) close() {
	_ = r.f.Close()
	if r.r == nil {
		return
	}
	r.r.Reset(nil)
	if cap(r.buf) > maxPooledBuffer {
		r.buf = nil
	}
	r.s.readBufs.Put(&spoolReadBuffers{r: r.r, buf: r.buf[:0]})
	r.r, r.buf = nil, nil
}

// syncDir makes the directory's entries (a rename, a new file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("enricher: spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("enricher: spool: sync directory: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path durably: a temporary file, synced, renamed over path, and
// the directory synced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}
