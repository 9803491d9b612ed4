package recording

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/trail"
)

// readCast reads a closed recording back, up to its final chunk.
func readCast(t *testing.T, session, id string) *Cast {
	t.Helper()
	var chunks []*trail.Recording
	require.Eventually(t, func() bool {
		chunks = readRecording(t, session, id, 1)
		return len(chunks) > 0 && chunks[len(chunks)-1].Final
	}, 10*time.Second, 50*time.Millisecond, "the recording's final chunk")
	_, err := trail.VerifyChain(chunks)
	require.NoError(t, err)
	var data strings.Builder
	for _, c := range chunks {
		data.WriteString(c.Data)
	}
	cast, err := Decode(strings.NewReader(data.String()))
	require.NoError(t, err)
	return cast
}

// TestTerminalLateIdleTimer: the idle timer of a held line fires just as the line ends another
// way, and its function runs late, once the next line has begun. It must not record that line
// before its time: a token typed, or echoed, in two pieces would be recorded unmasked.
func TestTerminalLateIdleTimer(t *testing.T) {
	for _, code := range []string{CodeInput, CodeOutput} {
		t.Run(code, func(t *testing.T) {
			ctx := t.Context()
			clk := newHandClock()
			p, err := NewPublisher(env.nc, PublisherOptions{Source: "test"})
			require.NoError(t, err)
			info := Info{RecordingID: trail.NewID(), SessionID: "s-late-timer", Format: trail.FormatAsciicast}
			w, err := p.Open(ctx, info, HeaderLine(Header{Term: Term{Cols: 80, Rows: 24}}))
			require.NoError(t, err)
			term := NewTerminal(w, NewMasker(newMasker(t), nil), clk.Now(), TerminalOptions{Clock: clk})
			record := func(s string) {
				if code == CodeInput {
					term.Input([]byte(s))
				} else {
					term.Output(code, []byte(s))
				}
			}

			record("ls")
			late := clk.timer(t, 0)
			late.fire() // and waits for the lock while the line ends
			record("\r\n")
			record(githubToken[:12])
			late.run()
			record(githubToken[12:] + "\r\n")
			require.NoError(t, term.Close(ctx))

			cast := readCast(t, info.SessionID, info.RecordingID)
			got := cast.Output()
			if code == CodeInput {
				got = cast.Input()
			}
			assert.NotContains(t, got, githubToken)
			assert.NotContains(t, got, githubToken[:12])
			assert.Equal(t, "ls\r\n", got[:4])
			assert.Contains(t, got, "gatehouse:masked:")
		})
	}
}
