package trail

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chain builds a sealed recording of n chunks, the last one final.
func chain(n int) []*Recording {
	var out []*Recording
	prev := ""
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		c := &Recording{
			Meta:        Meta{ID: ChunkID("rec-1", uint32(i))},
			RecordingID: "rec-1", SessionID: "s-1", AuditID: "a-1", Seq: uint32(i),
			Final: i == n-1, Format: FormatAsciicast, Subresource: "exec", Namespace: "ns", Pod: "p",
			Container: "main", Command: []string{"sh", "-c", "echo hi"}, User: "alice",
			Start: start.Add(time.Duration(i) * time.Second), Data: fmt.Sprintf("[0.5, \"o\", \"chunk %d\"]\n", i),
		}
		c.Seal(prev)
		prev = c.Hash
		out = append(out, c)
	}
	return out
}

func TestVerifyChain(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func([]*Recording) []*Recording
		wantErr error
	}{
		{"intact", func(c []*Recording) []*Recording { return c }, nil},
		{"data changed", func(c []*Recording) []*Recording { c[1].Data = "[0.5, \"o\", \"forged\"]\n"; return c }, ErrChainBroken},
		{"data changed and rehashed", func(c []*Recording) []*Recording {
			c[1].Data = "forged"
			c[1].Hash = ChunkHash(c[1], c[1].Prev)
			return c
		}, ErrChainBroken},
		{"command changed", func(c []*Recording) []*Recording { c[0].Command = []string{"true"}; return c }, ErrChainBroken},
		{"time changed", func(c []*Recording) []*Recording { c[2].Start = c[2].Start.Add(time.Hour); return c }, ErrChainBroken},
		{"chunk removed", func(c []*Recording) []*Recording { return append(c[:1], c[2:]...) }, ErrChainIncomplete},
		{"chunks swapped", func(c []*Recording) []*Recording {
			c[1], c[2] = c[2], c[1]
			c[1].Seq, c[2].Seq = 1, 2
			return c
		}, ErrChainBroken},
		{"tail cut", func(c []*Recording) []*Recording { return c[:3] }, ErrChainIncomplete},
		{"final flag moved", func(c []*Recording) []*Recording { c[3].Final = false; return c }, ErrChainBroken},
		{"empty", func([]*Recording) []*Recording { return nil }, ErrChainIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chunks := tc.tamper(chain(4))
			head, err := VerifyChain(chunks)
			if tc.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, chunks[len(chunks)-1].Hash, head)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestRecordingRoundTrip(t *testing.T) {
	c := chain(1)[0]
	msg, err := EncodeMsg(c, "proxy/test")
	require.NoError(t, err)
	assert.Equal(t, "gatehouse.recording.v1.s-1.rec-1", msg.Subject)
	assert.Equal(t, "rec-1.0", msg.Header.Get("Nats-Msg-Id"))
	got, err := Decode(msg.Data)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	_, err = VerifyChain([]*Recording{got.(*Recording)})
	require.NoError(t, err, "a chunk verifies after a round trip through JSON")

	var m map[string]any
	require.NoError(t, json.Unmarshal(msg.Data, &m))
	assert.Equal(t, "Recording", m["kind"])
}

func TestRequestPhase(t *testing.T) {
	r := &Request{Meta: Meta{ID: OpenID("a-1")}, AuditID: "a-1", Phase: PhaseOpen}
	require.NoError(t, complete(r))
	data, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"phase":"Open"`)
	assert.Equal(t, "a-1/open", r.ID)
	done := &Request{Meta: Meta{ID: "a-1"}, AuditID: "a-1"}
	require.NoError(t, complete(done))
	data, err = json.Marshal(done)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "phase", "a finished request has no phase")
}

// TestChunkHashFormat pins what ChunkHash covers, byte for byte, against an encoding written
// out here: stored chains must verify with every later version. The data is longer than the
// hasher's buffer.
func TestChunkHashFormat(t *testing.T) {
	c := chain(1)[0]
	c.Data = strings.Repeat("[0.5, \"o\", \"a line of output\"]\n", 300)
	var b []byte
	for _, f := range []string{"gatehouse.dev/recording-chunk/v1", "prev-hash", c.RecordingID, c.SessionID, c.AuditID,
		"0", "true", c.Format, c.Subresource, c.Namespace, c.Pod, c.Container, "3", "sh", "-c", "echo hi", c.User,
		strconv.FormatInt(c.Start.UnixMicro(), 10), c.Data} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	assert.Equal(t, hex.EncodeToString(sum[:]), ChunkHash(c, "prev-hash"))
}
