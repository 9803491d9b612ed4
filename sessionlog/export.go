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
