package trail

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Recording formats: what a recording's chunks carry in Data.
const (
	// FormatAsciicast is asciicast v3 (docs.asciinema.org/manual/asciicast/v3): the first chunk
	// starts with the header line, every line after it is an event [interval, code, data]. Besides
	// the standard codes (o output, i input, r resize, m marker, x exit status) Gatehouse writes
	// "e" for a command's stderr, which players ignore; `gatehouse sessions export` turns it into
	// "o".
	FormatAsciicast = "asciicast-v3"
	// FormatPortForward is a port-forward session: one JSON object per line for each connection
	// opened and closed, with its port and byte counts, never the bytes themselves.
	FormatPortForward = "portforward-v1"
)

// MaxRecordingChunkBytes bounds a chunk's Data, so that a chunk always fits a NATS message
// (1 MiB by default) with its header.
const MaxRecordingChunkBytes = 512 << 10

// Recording is one chunk of the recording of an exec, attach or port-forward session. The proxy
// publishes a session's chunks in order as the session goes on, each once JetStream stored the
// one before it or at most a few ahead, so a proxy that stops loses at most the chunk it was
// filling. Chunks are numbered from 0 (the first carries the header of the recording) and the
// last one is Final.
//
// The chunks of a recording form a hash chain: each chunk's Hash covers its own fields and the
// Hash of the chunk before it (Prev; "" for chunk 0), so a stored chunk that was changed,
// removed or reordered no longer verifies ([VerifyChain]). A recording is joined with the rest of
// the trail by SessionID, by RecordingID (the ID of the request's trail.Request record) and by
// AuditID.
//
// Data is masked by the proxy before a chunk is built: it never holds a secret value the proxy's
// detectors recognise or a value of a Secret the session read.
type Recording struct {
	Meta
	// RecordingID names the recording: the record ID of the exec, attach or port-forward request.
	RecordingID string `json:"recordingID"`
	SessionID   string `json:"sessionID,omitempty"`
	// AuditID is the Audit-ID of the upstream attempt the session runs on, when the chunk was
	// built (the first attempt's before the upstream connection exists).
	AuditID string `json:"auditID,omitempty"`
	// Seq numbers the chunks of a recording from 0.
	Seq uint32 `json:"seq"`
	// Final marks the last chunk.
	Final bool `json:"final,omitempty"`
	// Format is FormatAsciicast or FormatPortForward.
	Format string `json:"format"`
	// Subresource is exec, attach or portforward; Namespace and Pod name the pod.
	Subresource string `json:"subresource"`
	Namespace   string `json:"namespace,omitempty"`
	Pod         string `json:"pod,omitempty"`
	// Container and Command say what ran (command for exec), masked.
	Container string   `json:"container,omitempty"`
	Command   []string `json:"command,omitempty"`
	// User is the verified user the session ran as.
	User string `json:"user,omitempty"`
	// Start is the time of the chunk's first byte; the recording's own timing is in Data.
	Start time.Time `json:"start"`
	// Data is the chunk's part of the recording.
	Data string `json:"data"`
	// Prev is the Hash of chunk Seq-1, "" for chunk 0; Hash is ChunkHash of this chunk.
	Prev string `json:"prev,omitempty"`
	Hash string `json:"hash"`
}

// Session returns the chunk's session ID.
func (c *Recording) Session() string { return c.SessionID }

// ChunkID returns the record and message ID of chunk seq of a recording.
func ChunkID(recordingID string, seq uint32) string {
	return recordingID + "." + strconv.FormatUint(uint64(seq), 10)
}

// ChunkHash returns the hex SHA-256 of a chunk's content and the hash of the chunk before it:
// the recording, session and Audit-ID, the sequence number, the final flag, the format, what ran
// where, the start time (to the microsecond) and the data, each length-prefixed, after a domain
// tag. The chunk's own
// Hash and its header (ID, time, source) are not covered.
func ChunkHash(c *Recording, prev string) string {
	h := sha256.New()
	var buf [512]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(buf[:8], uint64(len(s)))
		h.Write(buf[:8])
		// Through a buffer on the stack: a conversion to []byte would copy the chunk's data
		// to the heap for every chunk.
		for len(s) > 0 {
			n := copy(buf[:], s)
			h.Write(buf[:n])
			s = s[n:]
		}
	}
	field("gatehouse.dev/recording-chunk/v1")
	field(prev)
	field(c.RecordingID)
	field(c.SessionID)
	field(c.AuditID)
	field(strconv.FormatUint(uint64(c.Seq), 10))
	field(strconv.FormatBool(c.Final))
	field(c.Format)
	field(c.Subresource)
	field(c.Namespace)
	field(c.Pod)
	field(c.Container)
	field(strconv.Itoa(len(c.Command)))
	for _, a := range c.Command {
		field(a)
	}
	field(c.User)
	// Microseconds: the precision the trail's stores keep (ClickHouse DateTime64(6)).
	field(strconv.FormatInt(c.Start.UnixMicro(), 10))
	field(c.Data)
	return hex.EncodeToString(h.Sum(nil))
}

// Seal sets the chunk's Prev and Hash: it is the next link after the chunk whose hash is prev.
func (c *Recording) Seal(prev string) {
	c.Prev = prev
	c.Hash = ChunkHash(c, prev)
}

// Errors of VerifyChain, matched with errors.Is.
var (
	// ErrChainBroken means a chunk's hash does not match its content or the chunk before it: a
	// chunk was changed, or one was removed or replaced.
	ErrChainBroken = errors.New("trail: recording hash chain broken")
	// ErrChainIncomplete means chunks are missing at the end (no final chunk) or in the middle
	// (a gap in the sequence numbers).
	ErrChainIncomplete = errors.New("trail: recording incomplete")
)

// VerifyChain checks the chunks of one recording, in Seq order: numbered from 0 without gaps,
// each Hash matching ChunkHash over its content and the Hash before it, the last one Final and
// no other. It returns the hash of the last chunk (the head of the chain) and an error wrapping
// ErrChainBroken or ErrChainIncomplete that names the first chunk that fails. A recording whose
// proxy stopped mid-session verifies up to its last stored chunk and is ErrChainIncomplete.
func VerifyChain(chunks []*Recording) (string, error) {
	prev := ""
	if len(chunks) == 0 {
		return "", fmt.Errorf("%w: no chunks", ErrChainIncomplete)
	}
	for i, c := range chunks {
		if c.Seq != uint32(i) {
			return prev, fmt.Errorf("%w: chunk %d is missing (next stored chunk is %d)", ErrChainIncomplete, i, c.Seq)
		}
		if c.Prev != prev {
			return prev, fmt.Errorf("%w: chunk %d does not link to chunk %d", ErrChainBroken, i, i-1)
		}
		if want := ChunkHash(c, prev); c.Hash != want {
			return prev, fmt.Errorf("%w: chunk %d does not match its hash", ErrChainBroken, i)
		}
		if c.Final && i != len(chunks)-1 {
			return c.Hash, fmt.Errorf("%w: chunk %d is final but chunks follow it", ErrChainBroken, i)
		}
		prev = c.Hash
	}
	if !chunks[len(chunks)-1].Final {
		return prev, fmt.Errorf("%w: no final chunk after chunk %d (the session is still running, or its proxy stopped)", ErrChainIncomplete, len(chunks)-1)
	}
	return prev, nil
}

// EncodeMsg completes a record's header and encodes it as the NATS message Publisher would
// publish: its subject, JSON data and the record ID as JetStream message ID. Producers that
// track their own acknowledgements (recordings) publish it themselves.
func EncodeMsg(r Record, source string) (*nats.Msg, error) {
	rec, err := encodeRecord(r, source)
	if err != nil {
		return nil, err
	}
	return buildMsg(rec.subject, []encodedRecord{rec}, len(rec.data)), nil
}

// RecordingsConsumer returns the durable pull consumer definition the enricher reads the
// recordings stream with: like EnricherConsumer, with fewer unacknowledged messages, as chunks
// are large.
func RecordingsConsumer() jetstream.ConsumerConfig {
	cfg := EnricherConsumer(StreamRecordings)
	cfg.MaxAckPending = 1024
	return cfg
}
