package sessionlog

import (
	"io"

	"github.com/gatehouse-dev/gatehouse/recording"
)

// Export writes a terminal recording as a .cast file that asciinema and asciinema-player play:
// asciicast v3, with Gatehouse's stderr events as output events (recording.ToStandard). It is
// what `gatehouse sessions export` writes and what the console's player plays.
func (r *Recording) Export(w io.Writer) error {
	cast, err := r.Cast()
	if err != nil {
		return err
	}
	return recording.Encode(w, recording.ToStandard(cast))
}

// Summary describes the recording as Recordings does: where and by whom it was made, its chunks
// and, for a terminal, the lines typed and the exit status.
func (r *Recording) Summary() RecordingSummary {
	first, last := r.Chunks[0], r.Chunks[len(r.Chunks)-1]
	s := RecordingSummary{ID: r.ID, SessionID: first.SessionID, AuditID: first.AuditID, Format: first.Format,
		Subresource: first.Subresource, Namespace: first.Namespace, Pod: first.Pod, Container: first.Container,
		Command: first.Command, User: first.User, Started: first.Start, Chunks: len(r.Chunks), Complete: last.Final}
	r.describe(&s)
	return s
}
