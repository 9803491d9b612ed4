package enricher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The audit log follower is the webhook's backstop. kube-apiserver writes every audit event to
// its log backend (--audit-log-path) as well as to the webhook; the follower reads that file and
// spools its events like the intake does, so an event the webhook gave up on (the enricher was
// down longer than the webhook's retries) is stored from the log. Both paths store the same
// event with the same key (audit ID, stage and request fingerprint), so ClickHouse keeps it once.
//
// The follower keeps its position (file inode and offset) in the spool directory, written after
// each batch is spooled, so a restart resumes where it stopped. kube-apiserver rotates the log
// by renaming it to <name>-<timestamp><ext> (lumberjack) and starting a new file: the follower
// reads a renamed file to its end, then every newer rotated file, then the new one, also after a
// restart that happened while the log rotated. Rotated files compressed by
// --audit-log-compress cannot be read; what was not read before compression is reported as lost.

// tailBatchLines and tailBatchBytes bound a batch of log lines, like the webhook's batches.
const (
	tailBatchLines = 400
	tailBatchBytes = 4 << 20
)

// tailPosition is how far an audit log has been spooled.
type tailPosition struct {
	Inode  uint64    `json:"inode"`
	Offset int64     `json:"offset"`
	File   string    `json:"file"`
	Saved  time.Time `json:"saved"`
}

type tailer struct {
	e       *Enricher
	path    string
	posPath string
	pos     tailPosition

	f       *os.File
	inode   uint64
	rotated bool     // f is a rotated file: it does not grow any more
	queue   []string // rotated files to read after f, oldest first
	scan    []byte
}

// tailAuditLog follows Options.AuditLogPath until ctx ends.
func (e *Enricher) tailAuditLog(ctx context.Context) {
	path := e.opts.AuditLogPath
	// One position per host and path: every control-plane node has its own log.
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + "\x00" + path))
	t := &tailer{e: e, path: path, posPath: filepath.Join(e.opts.SpoolDir, "tail-"+hex.EncodeToString(sum[:8])+".json"), scan: make([]byte, 1<<20)}
	if b, err := os.ReadFile(t.posPath); err == nil {
		if err := json.Unmarshal(b, &t.pos); err != nil {
			e.log.Error("the audit log position is unreadable; reading the log from its start", "file", t.posPath, "err", err)
			t.pos = tailPosition{}
		}
	}
	e.log.Info("following the audit log", "path", path, "inode", t.pos.Inode, "offset", t.pos.Offset)
	defer t.close()
	failing := false
	for {
		err := t.poll(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				e.log.Warn("following the audit log failed, retrying", "path", path, "err", err)
			}
			failing = true
		case err == nil && failing:
			failing = false
			e.log.Info("following the audit log again", "path", path)
		}
		if e.afterPoll != nil {
			e.afterPoll()
		}
		if !waitTimer(ctx, e.opts.AuditLogPollInterval, nil) {
			return
		}
	}
}

func (t *tailer) close() {
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
}

// poll spools what was written since the last poll, following rotations.
func (t *tailer) poll(ctx context.Context) error {
	if t.f == nil {
		if err := t.resume(); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // not written yet
			}
			return err
		}
	}
	for ctx.Err() == nil {
		more, err := t.spoolLines(false)
		if err != nil {
			return err
		}
		if more {
			continue
		}
		if !t.rotated {
			st, err := os.Stat(t.path)
			if errors.Is(err, os.ErrNotExist) {
				return nil // rotated, the new file is not there yet
			}
			if err != nil {
				return err
			}
			if inodeOf(st) == t.inode {
				if size := st.Size(); size < t.pos.Offset {
					t.e.log.Warn("audit log truncated; reading it from the start", "path", t.path)
					t.setPos(0)
					continue
				}
				return nil // at the end of the live file
			}
			// Renamed: what was written before the rename is read below, then the newer files.
			t.rotated = true
			t.queue = t.successors()
			t.e.log.Info("audit log rotated", "path", t.path)
			continue
		}
		// The end of a rotated file: a last line without newline is complete too.
		if _, err := t.spoolLines(true); err != nil {
			return err
		}
		if err := t.advance(); err != nil {
			return err
		}
	}
	return nil
}

// resume opens the file the saved position is in, or the live file.
func (t *tailer) resume() error {
	st, err := os.Stat(t.path)
	if err != nil {
		return err
	}
	switch {
	case t.pos.Inode == 0:
		return t.open(t.path, false, 0)
	case inodeOf(st) == t.pos.Inode:
		return t.open(t.path, false, t.pos.Offset)
	}
	// The log rotated while the enricher was away.
	rotated := t.rotatedFiles()
	for i, f := range rotated {
		if f.inode == t.pos.Inode {
			t.queue = names(rotated[i+1:])
			t.e.log.Info("resuming in a rotated audit log", "file", f.path, "offset", t.pos.Offset, "newerFiles", len(t.queue))
			return t.open(f.path, true, t.pos.Offset)
		}
	}
	var newer []rotatedFile
	for _, f := range rotated {
		if !f.rotatedAt.Before(t.pos.Saved) {
			newer = append(newer, f)
		}
	}
	t.e.metrics.auditLogGaps.Inc()
	t.e.log.Error("the audit log file the enricher was reading is gone (deleted or compressed by rotation); events written to it after the saved position are lost unless the webhook delivered them",
		"path", t.path, "inode", t.pos.Inode, "offset", t.pos.Offset, "saved", t.pos.Saved)
	t.queue = names(newer)
	return t.advance()
}

// advance moves to the next rotated file, or to the live file.
func (t *tailer) advance() error {
	t.close()
	if len(t.queue) > 0 {
		next := t.queue[0]
		t.queue = t.queue[1:]
		err := t.open(next, true, 0)
		if errors.Is(err, os.ErrNotExist) {
			t.e.metrics.auditLogGaps.Inc()
			t.e.log.Error("a rotated audit log file was removed before it was read", "file", next)
			return t.advance()
		}
		return err
	}
	t.queue = nil
	return t.open(t.path, false, 0)
}

func (t *tailer) open(path string, rotated bool, offset int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	if offset > st.Size() {
		offset = 0
	}
	t.f, t.inode, t.rotated = f, inodeOf(st), rotated
	t.pos = tailPosition{Inode: t.inode, Offset: offset, File: filepath.Base(path), Saved: t.pos.Saved}
	return nil
}

func (t *tailer) setPos(offset int64) {
	t.pos.Offset = offset
}

// spoolLines spools the next batch of complete lines of f from the position and saves the new
// position. At the end of a rotated file (final), a last line without newline counts as
// complete. It reports whether it spooled anything.
func (t *tailer) spoolLines(final bool) (bool, error) {
	start := t.pos.Offset
	end, lines := start, 0
	off := start
	for lines < tailBatchLines && end-start < tailBatchBytes {
		n, err := t.f.ReadAt(t.scan, off)
		chunk := t.scan[:n]
		for len(chunk) > 0 && lines < tailBatchLines && end-start < tailBatchBytes {
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				off += int64(len(chunk))
				break
			}
			off += int64(i + 1)
			end = off
			lines++
			chunk = chunk[i+1:]
		}
		if errors.Is(err, io.EOF) || n == 0 {
			if final && off > end {
				end = off
			}
			break
		}
		if err != nil {
			return false, err
		}
	}
	if end == start {
		return false, nil
	}
	src := newEventLinesReader(io.NewSectionReader(t.f, start, end-start), t.e.opts.MaxEventBytes)
	id := fmt.Sprintf("file-%d-%d-%d", t.inode, start, end-start)
	file := t.pos.File
	_, _, err := t.e.ingest(src, OriginFile, func() string { return id }, func(offset int64, err error) {
		t.e.metrics.auditLogBadLines.Inc()
		t.e.log.Error("audit log line is not an audit event, skipped", "file", file, "offset", start+offset, "err", err)
	}, nil)
	if err != nil {
		return false, err
	}
	t.pos.Offset, t.pos.Saved = end, time.Now()
	if err := t.save(); err != nil {
		// Not fatal: after a restart the lines since the last saved position are read again,
		// and stored once.
		t.e.log.Warn("saving the audit log position failed", "file", t.posPath, "err", err)
	}
	return true, nil
}

func (t *tailer) save() error {
	b, err := json.Marshal(t.pos)
	if err != nil {
		return err
	}
	return writeFileAtomic(t.posPath, b)
}

// rotatedFile is a file kube-apiserver's log rotation renamed.
type rotatedFile struct {
	path      string
	inode     uint64
	rotatedAt time.Time
}

// backupTimeFormat is the timestamp lumberjack puts in rotated file names (UTC).
const backupTimeFormat = "2006-01-02T15-04-05.000"

// rotatedFiles lists the uncompressed rotated files of the log, oldest first: for audit.log,
// audit-<timestamp>.log.
func (t *tailer) rotatedFiles() []rotatedFile {
	dir, base := filepath.Split(t.path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []rotatedFile
	for _, de := range entries {
		name := de.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ext) {
			continue
		}
		ts, err := time.Parse(backupTimeFormat, strings.TrimSuffix(strings.TrimPrefix(name, prefix), ext))
		if err != nil {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, rotatedFile{path: filepath.Join(dir, name), inode: inodeOf(info), rotatedAt: ts})
	}
	slices.SortFunc(out, func(a, b rotatedFile) int { return a.rotatedAt.Compare(b.rotatedAt) })
	return out
}

// successors returns the rotated files newer than the one open, oldest first.
func (t *tailer) successors() []string {
	rotated := t.rotatedFiles()
	for i, f := range rotated {
		if f.inode == t.inode {
			return names(rotated[i+1:])
		}
	}
	// The open file is no longer among them (removed): every rotated file renamed after it was
	// last written is newer.
	var newer []rotatedFile
	if st, err := t.f.Stat(); err == nil {
		for _, f := range rotated {
			if !f.rotatedAt.Before(st.ModTime().Truncate(time.Millisecond)) {
				newer = append(newer, f)
			}
		}
	}
	return names(newer)
}

func names(fs []rotatedFile) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.path
	}
	return out
}

func inodeOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
