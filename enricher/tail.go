package enricher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PositionsBucket is the JetStream key-value bucket where the file tailer keeps how far it has
// published each audit log, so that a restart resumes there.
const PositionsBucket = "gatehouse-enricher-positions"

// tailBatchLines is the most log lines published in one batch, like the webhook's default
// batch size.
const tailBatchLines = 400

// position is how far an audit log file has been published.
type position struct {
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

// tailAuditLog follows the audit log file AuditLogPath as kube-apiserver's log backend writes
// it (one JSON event per line, rotated by renaming), publishing complete lines in batches like
// the webhook intake. A rotated file is read to its end before the new one is opened. After a
// restart it resumes at the stored position, or at the start of a file it has not seen;
// anything read twice is stored once.
func (e *Enricher) tailAuditLog(ctx context.Context) error {
	path := e.opts.AuditLogPath
	var kv jetstream.KeyValue
	if err := retry(ctx, e.opts.RetryDelay, func() error {
		var err error
		kv, err = e.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      PositionsBucket,
			Description: "Gatehouse enricher: how far each audit log file has been read",
			History:     1,
		})
		return err
	}, e.log, "creating the audit log position bucket failed, retrying"); err != nil {
		return nil
	}
	// One position per host and path: every control-plane node has its own log.
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + "\x00" + path))
	key := "file-" + hex.EncodeToString(sum[:16])
	var pos position
	if entry, err := kv.Get(ctx, key); err == nil {
		_ = json.Unmarshal(entry.Value(), &pos)
	}
	t := &tailer{e: e, path: path, kv: kv, key: key, pos: pos}
	e.log.Info("following the audit log", "path", path, "inode", pos.Inode, "offset", pos.Offset)
	defer t.close()
	for {
		if err := t.poll(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("reading the audit log failed, retrying", "path", path, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(e.opts.AuditLogPollInterval):
		}
	}
}

type tailer struct {
	e    *Enricher
	path string
	kv   jetstream.KeyValue
	key  string

	f     *os.File
	inode uint64
	pos   position
	buf   []byte // read but not yet published, starting at pos.Offset
	skip  bool   // discarding an overlong line up to its end
}

func (t *tailer) close() {
	if t.f != nil {
		_ = t.f.Close()
	}
}

// poll publishes what was appended since the last poll, following a rotation.
func (t *tailer) poll(ctx context.Context) error {
	if t.f == nil {
		if err := t.open(); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // not written yet
			}
			return err
		}
	}
	for {
		if err := t.readAvailable(ctx); err != nil {
			return err
		}
		// At the end of the file: has it been rotated or truncated?
		st, err := os.Stat(t.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // rotated, the new file is not there yet
			}
			return err
		}
		switch {
		case inodeOf(st) != t.inode:
			if err := t.readAvailable(ctx); err != nil { // lines written before the rename
				return err
			}
			t.e.log.Info("audit log rotated", "path", t.path)
			t.close()
			t.f = nil
			t.pos = position{}
			if err := t.open(); err != nil {
				return err
			}
			continue
		case st.Size() < t.pos.Offset+int64(len(t.buf)):
			t.e.log.Warn("audit log truncated; reading it from the start", "path", t.path)
			t.pos, t.buf = position{Inode: t.inode}, t.buf[:0]
			if _, err := t.f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			continue
		}
		return nil
	}
}

func (t *tailer) open() error {
	f, err := os.Open(t.path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	t.f, t.inode, t.buf = f, inodeOf(st), t.buf[:0]
	if t.pos.Inode != t.inode || t.pos.Offset > st.Size() {
		t.pos = position{Inode: t.inode}
	}
	_, err = f.Seek(t.pos.Offset, io.SeekStart)
	return err
}

// readAvailable reads to the end of the file and publishes its complete lines.
func (t *tailer) readAvailable(ctx context.Context) error {
	limit := int(t.e.opts.MaxRequestBytes)
	for {
		if cap(t.buf)-len(t.buf) < 64<<10 {
			t.buf = slices.Grow(t.buf, max(cap(t.buf), 256<<10))
		}
		n, err := t.f.Read(t.buf[len(t.buf):cap(t.buf)])
		t.buf = t.buf[:len(t.buf)+n]
		if err := t.publishLines(ctx); err != nil {
			return err
		}
		if len(t.buf) > limit {
			// A line longer than any batch may be: drop it, it cannot be stored.
			t.e.log.Error("audit log line too long, skipped", "path", t.path, "offset", t.pos.Offset, "limit", limit)
			t.advance(len(t.buf))
			t.skip = true
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// publishLines publishes the complete lines in buf in batches and advances the position.
func (t *tailer) publishLines(ctx context.Context) error {
	for {
		end := bytes.LastIndexByte(t.buf, '\n')
		if end < 0 {
			return nil
		}
		if t.skip { // the rest of an overlong line
			i := bytes.IndexByte(t.buf, '\n')
			t.advance(i + 1)
			t.skip = false
			continue
		}
		// Up to tailBatchLines lines and MaxRequestBytes bytes.
		n, lines := 0, 0
		for n <= end && lines < tailBatchLines {
			i := bytes.IndexByte(t.buf[n:], '\n')
			if n > 0 && n+i+1 > int(t.e.opts.MaxRequestBytes) {
				break
			}
			n += i + 1
			lines++
		}
		if err := t.publish(ctx, t.buf[:n]); err != nil {
			return err
		}
		t.advance(n)
	}
}

// advance drops n published bytes from buf and stores the new position.
func (t *tailer) advance(n int) {
	t.pos.Offset += int64(n)
	t.buf = t.buf[:copy(t.buf, t.buf[n:])]
	data, _ := json.Marshal(t.pos)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := t.kv.Put(ctx, t.key, data); err != nil {
		// Not fatal: after a restart the lines since the last stored position are read again and
		// stored once.
		t.e.log.Warn("storing the audit log position failed", "err", err)
	}
}

// publish publishes complete lines as one batch. A line that is not an audit event is logged
// (by offset) and skipped; the other lines of its batch are published.
func (t *tailer) publish(ctx context.Context, chunk []byte) error {
	lines := bytes.SplitAfter(chunk, []byte("\n"))
	body := eventListOf(lines)
	msgs, n, err := t.e.prepare(body, OriginFile)
	if errors.Is(err, ErrMalformed) {
		var good [][]byte
		off := t.pos.Offset
		for _, l := range lines {
			if len(bytes.TrimSpace(l)) > 0 {
				if _, _, err := t.e.prepare(eventListOf([][]byte{l}), OriginFile); err != nil {
					t.e.log.Error("audit log line is not an audit event, skipped", "path", t.path, "offset", off, "err", err)
				} else {
					good = append(good, l)
				}
			}
			off += int64(len(l))
		}
		msgs, n, err = t.e.prepare(eventListOf(good), OriginFile)
	}
	if err != nil || n == 0 {
		return err
	}
	id := "file-" + strconv.FormatUint(t.inode, 10) + "-" + strconv.FormatInt(t.pos.Offset, 10) + "-" + strconv.Itoa(len(chunk))
	if err := t.e.publish(ctx, id, msgs); err != nil {
		return err
	}
	t.e.metrics.events.WithLabelValues(OriginFile).Add(float64(n))
	return nil
}

// eventListOf wraps log lines, each an audit event, into an EventList.
func eventListOf(lines [][]byte) []byte {
	size := len(wrapHead) + len(wrapTail)
	for _, l := range lines {
		size += len(l) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, wrapHead...)
	first := true
	for _, l := range lines {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, l...)
	}
	return append(b, wrapTail...)
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
