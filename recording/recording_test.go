package recording

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/test/testbed"
	"github.com/gatehouse-dev/gatehouse/trail"
)

var env struct {
	nats *testbed.NATS
	nc   *nats.Conn
	js   jetstream.JetStream
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "recording tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if env.nats, err = testbed.StartNATS(); err != nil {
		return 0, err
	}
	defer env.nats.Stop()
	if env.nc, err = env.nats.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		return 0, err
	}
	defer env.nc.Close()
	if env.js, err = jetstream.New(env.nc); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func newMasker(t testing.TB) *masking.Masker {
	t.Helper()
	m, err := masking.New(masking.Config{Key: []byte("recording-test-masking-key-0001")})
	require.NoError(t, err)
	return m
}

// placeholder returns the placeholder the masker gives a Secret value.
func placeholder(t testing.TB, m *masking.Masker, v string) string {
	t.Helper()
	secret := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","data":{"k":%q}}`, base64.StdEncoding.EncodeToString([]byte(v)))
	out, _, err := m.JSON(nil, []byte(secret), masking.Target{Version: "v1", Resource: "secrets"})
	require.NoError(t, err)
	i := bytes.Index(out, []byte(`"k":"`))
	require.GreaterOrEqual(t, i, 0)
	enc := out[i+5:]
	enc = enc[:bytes.IndexByte(enc, '"')]
	dec, err := base64.StdEncoding.DecodeString(string(enc))
	require.NoError(t, err)
	return string(dec)
}

const githubToken = "ghp_" + "R4nd0mT0k3nV4lu3Xy7Qz9Kw2Lm5Np8Jh1Bv" // a made-up token of the right shape

// collector gathers what a LiveMasker passes on.
type collector struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
}

func (c *collector) emit(p []byte, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	c.n++
	return nil
}

func (c *collector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func TestLiveMasker(t *testing.T) {
	m := newMasker(t)
	secret := "s3cr3t-from-a-Secret-7f3a"
	values := &Values{}
	values.Add([]byte(secret), []byte(placeholder(t, m, secret)))
	tests := []struct {
		name   string
		frames []string
		// wantNow is what is passed on before the delay passes; want what is passed on in all.
		wantNow, want string
		leak          []string
	}{
		{
			name:   "a token cut by a frame boundary",
			frames: []string{"export TOKEN=" + githubToken[:10], githubToken[10:] + "\n"},
			leak:   []string{githubToken, githubToken[4:10]},
		},
		{
			name:   "a session value in output",
			frames: []string{"value: " + secret[:5], secret[5:] + " done\n"},
			want:   "value: " + placeholder(t, m, secret) + " done\n",
			leak:   []string{secret, secret[:5]},
		},
		{
			name:    "a prompt is passed on after the delay",
			frames:  []string{"line one\n$ "},
			wantNow: "line one\n",
			want:    "line one\n$ ",
		},
		{
			name:   "a line continued after its start was passed on",
			frames: []string{"hello ", "world\n"},
			want:   "hello world\n",
		},
		{
			name:   "a secret value spread over lines",
			frames: []string{"-----BEGIN\n" + secret + "\n", "-----END\n"},
			want:   "-----BEGIN\n" + placeholder(t, m, secret) + "\n-----END\n",
			leak:   []string{secret},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Now())
			c := &collector{}
			sm := NewMasker(m, values)
			l := NewLiveMasker(sm, c.emit, LiveOptions{Clock: clk})
			for _, f := range tc.frames {
				_, err := l.Write([]byte(f))
				require.NoError(t, err)
			}
			if tc.wantNow != "" {
				assert.Equal(t, tc.wantNow, c.String(), "a partial line waits for the delay")
			}
			clk.Step(time.Second)
			require.NoError(t, l.Close())
			got := c.String()
			if tc.want != "" {
				assert.Equal(t, tc.want, got)
			}
			for _, s := range tc.leak {
				assert.NotContains(t, got, s)
			}
			if len(tc.leak) > 0 {
				assert.Contains(t, got, "gatehouse:masked:")
				assert.Positive(t, sm.Stats().Fields)
			}
		})
	}
}

func TestLiveMaskerEchoPassesAtOnce(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	c := &collector{}
	echo := &Echo{}
	l := NewLiveMasker(NewMasker(newMasker(t), nil), c.emit, LiveOptions{Clock: clk, Echo: echo})
	for _, k := range []string{"l", "s"} {
		echo.Input([]byte(k))
		_, err := l.Write([]byte(k))
		require.NoError(t, err)
	}
	assert.Equal(t, "ls", c.String(), "typed keys are echoed without waiting")
	_, err := l.Write([]byte("x"))
	require.NoError(t, err)
	assert.Equal(t, "ls", c.String(), "output that was not typed waits")
}

func TestValuesBounded(t *testing.T) {
	v := &Values{}
	v.Add([]byte("short"), []byte("P"))
	assert.Equal(t, 0, v.Len(), "values shorter than MinValueBytes are not kept")
	for i := range MaxValues + 10 {
		v.Add(fmt.Appendf(nil, "value-number-%04d", i), []byte("P"))
	}
	assert.Equal(t, MaxValues, v.Len())
	out, n := v.Replace([]byte("value-number-0000 value-number-0265"))
	assert.Equal(t, 1, n, "the oldest value was forgotten")
	assert.Equal(t, "value-number-0000 P", string(out))
	assert.NotContains(t, fmt.Sprint(v), "value-number", "a Values set never prints its values")
	assert.NotContains(t, fmt.Sprintf("%v %+v %#v %s", v, v, v, v), "value-number")
}

// TestValuesForgetOldestFirst fills a set past both bounds with values of many lengths, each
// added twice: it keeps exactly the newest that fit, each with its newer placeholder, and forgets
// the rest. With collisions, every value has one of two hashes, so that the chains of values
// with the same hash are long and are unlinked from the middle.
func TestValuesForgetOldestFirst(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		size  func(i int) int
		multi bool
	}{
		{"by count", MaxValues * 3, func(i int) int { return 6 + i%50 }, false},
		{"by bytes", 64, func(i int) int { return 20<<10 + (i%7)*1000 }, false},
		{"lines", MaxValues, func(i int) int { return 30 + i%5 }, true},
	}
	for _, tc := range tests {
		for _, collide := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/collisions=%v", tc.name, collide), func(t *testing.T) {
				v := &Values{}
				if collide {
					v.hash = func(b []byte) uint64 { return uint64(len(b) % 2) }
				}
				val := func(i int) []byte {
					b := []byte(strings.Repeat("x", tc.size(i)))
					copy(b, fmt.Sprintf("v%05d-", i))
					if tc.multi {
						copy(b[len(b)-9:], fmt.Sprintf("\nl%05d-", i))
					}
					return b
				}
				for i := range tc.n {
					v.Add(val(i), []byte("first"))
					v.Add(val(i), fmt.Appendf(nil, "P%d", i)) // already kept: takes the placeholder
				}
				require.LessOrEqual(t, v.Len(), MaxValues)
				kept, total := 0, 0
				for i := tc.n - 1; i >= 0; i-- {
					if !v.Contains(val(i)) {
						break
					}
					kept++
					total += len(val(i))
					out, n := v.Replace(val(i))
					assert.Equal(t, 1, n)
					assert.Equal(t, fmt.Sprintf("P%d", i), string(out))
				}
				require.Positive(t, kept)
				assert.LessOrEqual(t, total, MaxValuesBytes)
				for i := range tc.n - kept {
					assert.False(t, v.Contains(val(i)), "value %d was forgotten", i)
				}
				if !tc.multi {
					assert.Equal(t, kept, v.Len(), "the newest are kept, in one run")
				}
			})
		}
	}
}

// TestValuesKeepWhatIsReadAgain: a value added again (a Secret the session reads again) becomes
// the newest, and the values added longest ago are forgotten first.
func TestValuesKeepWhatIsReadAgain(t *testing.T) {
	v := &Values{}
	val := func(i int) []byte { return fmt.Appendf(nil, "value-number-%04d", i) }
	for i := range MaxValues {
		v.Add(val(i), []byte("P"))
	}
	v.Add(val(0), []byte("P0"))
	v.Add(val(MaxValues), []byte("P"))
	assert.True(t, v.Contains(val(0)), "read again: kept")
	assert.False(t, v.Contains(val(1)), "read longest ago: forgotten")
	assert.Equal(t, MaxValues, v.Len())
	out, n := v.Replace(val(0))
	assert.Equal(t, 1, n)
	assert.Equal(t, "P0", string(out), "with the placeholder it was read with last")

	// The same through a batch.
	var b Batch
	b.Add(val(2), []byte("P2"))
	for i := range MaxValues - 1 {
		b.Add(val(1000+i), []byte("P"))
	}
	v.AddBatch(&b)
	assert.True(t, v.Contains(val(2)))
	assert.False(t, v.Contains(val(3)))
	assert.False(t, v.Contains(val(0)), "older than the whole batch")
}

// readRecording reads the stored chunks of a recording.
func readRecording(t *testing.T, session, id string, want int) []*trail.Recording {
	t.Helper()
	ctx := t.Context()
	cons, err := env.js.OrderedConsumer(ctx, trail.StreamRecordings, jetstream.OrderedConsumerConfig{FilterSubjects: []string{trail.RecordingSubject(session, id)}})
	require.NoError(t, err)
	var out []*trail.Recording
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		msgs, err := cons.Fetch(100, jetstream.FetchMaxWait(200*time.Millisecond))
		require.NoError(t, err)
		for msg := range msgs.Messages() {
			r, err := trail.Decode(msg.Data())
			require.NoError(t, err)
			out = append(out, r.(*trail.Recording))
		}
	}
	return out
}

func TestTerminalRecording(t *testing.T) {
	ctx := t.Context()
	m := newMasker(t)
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	p, err := NewPublisher(env.nc, PublisherOptions{Source: "test", ChunkBytes: 256, Clock: clk})
	require.NoError(t, err)
	info := Info{RecordingID: trail.NewID(), SessionID: "s-term", AuditID: "a-1", Format: trail.FormatAsciicast,
		Subresource: "exec", Namespace: "ns", Pod: "p", Container: "main", Command: []string{"sh"}, User: "alice"}
	start := clk.Now()
	w, err := p.Open(ctx, info, HeaderLine(Header{Term: Term{Cols: 80, Rows: 24}, Timestamp: start.Unix(), Command: "sh"}))
	require.NoError(t, err)
	term := NewTerminal(w, NewMasker(m, nil), start, TerminalOptions{Clock: clk})

	step := func(d time.Duration) { clk.Step(d) }
	step(100 * time.Millisecond)
	term.Output(CodeOutput, []byte("welcome\n"))
	step(100 * time.Millisecond)
	term.Output(CodeOutput, []byte("$ "))
	step(100 * time.Millisecond)
	// A token typed key by key, echoed key by key: each piece alone is harmless.
	for _, k := range "echo " + githubToken {
		term.Input([]byte(string(k)))
		term.Output(CodeOutput, []byte(string(k)))
		step(10 * time.Millisecond)
	}
	term.Input([]byte("\r"))
	term.Output(CodeOutput, []byte("\r\n"))
	step(time.Millisecond)
	term.Resize(100, 30)
	term.Output(CodeStderr, []byte("warning: caf\xc3"))
	term.Output(CodeStderr, []byte("\xa9 is open\n"))
	for i := range 20 {
		term.Output(CodeOutput, fmt.Appendf(nil, "line %02d of some ordinary output\n", i))
		step(5 * time.Millisecond)
	}
	term.Exit(3)
	require.NoError(t, term.Close(ctx))

	chunks := readRecording(t, "s-term", info.RecordingID, 3)
	require.Greater(t, len(chunks), 2, "the recording is sent in several chunks")
	head, err := trail.VerifyChain(chunks)
	require.NoError(t, err)
	assert.NotEmpty(t, head)
	var data strings.Builder
	for _, c := range chunks {
		data.WriteString(c.Data)
		assert.Equal(t, "alice", c.User)
	}
	cast, err := Decode(strings.NewReader(data.String()))
	require.NoError(t, err)
	assert.Equal(t, 80, cast.Header.Term.Cols)
	out := cast.Output()
	assert.NotContains(t, out, githubToken, "a token typed key by key is masked in the recorded output")
	assert.NotContains(t, cast.Input(), githubToken, "and in the recorded input")
	assert.Contains(t, out, "gatehouse:masked:")
	assert.Contains(t, out, "warning: café is open\n", "a UTF-8 character cut by a frame boundary is recorded whole")
	assert.Contains(t, out, "line 19 of some ordinary output\n")
	status, ok := cast.ExitStatus()
	require.True(t, ok)
	assert.Equal(t, 3, status)
	var prev time.Duration
	var resized bool
	for _, e := range cast.Events {
		assert.GreaterOrEqual(t, e.Time, prev, "events are in time order")
		prev = e.Time
		resized = resized || (e.Code == CodeResize && e.Data == "100x30")
	}
	assert.True(t, resized)
	// Unmasked lines keep the timing of their pieces; a masked line gets its first piece's.
	assert.Equal(t, "welcome\n", cast.Events[0].Data)
	assert.Equal(t, 100*time.Millisecond, cast.Events[0].Time)
	assert.Equal(t, "$ echo gatehouse:masked:", cast.Events[1].Data[:len("$ echo gatehouse:masked:")])
	assert.Equal(t, 200*time.Millisecond, cast.Events[1].Time)

	var export bytes.Buffer
	require.NoError(t, Encode(&export, ToStandard(cast)))
	again, err := Decode(&export)
	require.NoError(t, err)
	for _, e := range again.Events {
		assert.NotEqual(t, CodeStderr, e.Code, "exported recordings use the standard codes only")
	}
	assert.Equal(t, out, again.Output())
}

func TestRecordingRefusedWithoutNATS(t *testing.T) {
	p, err := NewPublisher(env.nc, PublisherOptions{RetryTimeout: 500 * time.Millisecond})
	require.NoError(t, err)
	env.nats.Shutdown()
	defer func() {
		require.NoError(t, env.nats.Start())
		require.Eventually(t, env.nc.IsConnected, 10*time.Second, 20*time.Millisecond)
	}()
	require.Eventually(t, func() bool { return !env.nc.IsConnected() }, 5*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, p.Ready(), ErrUnavailable)
	_, err = p.Open(t.Context(), Info{RecordingID: trail.NewID(), SessionID: "s-down", Format: trail.FormatAsciicast}, HeaderLine(Header{}))
	require.Error(t, err, "a recording that cannot be stored does not start")
}

func TestWriterFailsWhenChunksCannotBeStored(t *testing.T) {
	ctx := t.Context()
	p, err := NewPublisher(env.nc, PublisherOptions{ChunkBytes: 64, RetryTimeout: 300 * time.Millisecond, AckTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	w, err := p.Open(ctx, Info{RecordingID: trail.NewID(), SessionID: "s-fail", Format: trail.FormatAsciicast}, HeaderLine(Header{}))
	require.NoError(t, err)
	env.nats.Shutdown()
	defer func() {
		require.NoError(t, env.nats.Start())
		require.Eventually(t, env.nc.IsConnected, 10*time.Second, 20*time.Millisecond)
	}()
	require.Eventually(t, func() bool {
		_ = w.Append(time.Now(), bytes.Repeat([]byte("x"), 100))
		return w.Err() != nil
	}, 10*time.Second, 10*time.Millisecond)
	require.ErrorIs(t, w.Err(), ErrFailed)
	require.ErrorIs(t, w.Append(time.Now(), []byte("more")), ErrFailed)
}
