package masking

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatchStreamFixture(t *testing.T) {
	m := newMasker(t, Config{})
	in := fixture(t, "watch.jsonl")
	want, wantStats, err := m.Body("application/json;stream=watch", "", in, Target{Resource: "secrets"})
	require.NoError(t, err)
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(in),
		"one byte": iotest.OneByteReader(bytes.NewReader(in)),
		"half":     iotest.HalfReader(bytes.NewReader(in)),
	} {
		t.Run(name, func(t *testing.T) {
			s := m.WatchStream(r, Target{Resource: "secrets"})
			out, err := io.ReadAll(s)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(out))
			requireNoCanary(t, out)
			assert.Equal(t, wantStats, s.Stats())
			require.NoError(t, s.Close())
		})
	}
}

func TestWatchStreamIsNotBuffered(t *testing.T) {
	m := newMasker(t, Config{})
	pr, pw := io.Pipe()
	s := m.WatchStream(pr, Target{Resource: "secrets"})
	br := bufio.NewReader(s)
	go func() {
		_, _ = pw.Write([]byte(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"YQ=="}}}` + "\n"))
	}()
	line := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		assert.Equal(t, expand(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:a>>"}}}`)+"\n", l)
	case <-time.After(5 * time.Second):
		t.Fatal("the first event was held back")
	}
	// An event without a trailing newline is also delivered at once.
	go func() {
		_, _ = pw.Write([]byte(`{"type":"DELETED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"Yg=="}}}`))
	}()
	go func() {
		l, _ := br.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		assert.Contains(t, l, b64ph("b"))
	case <-time.After(5 * time.Second):
		t.Fatal("an event without newline was held back")
	}
	require.NoError(t, pw.Close())
	_, err := br.ReadString('\n')
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, 2, s.Stats().Fields)
}

// TestWatchStreamBatches checks that events read together are handed out together, so that a
// proxy writes (and flushes) them once, while an event that arrives alone is not held back
// (TestWatchStreamIsNotBuffered).
func TestWatchStreamBatches(t *testing.T) {
	m := newMasker(t, Config{})
	event := func(k string) string {
		return `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"` + k + `"}}}` + "\n"
	}
	in := event("YQ==") + event("Yg==") + event("Yw==")
	s := m.WatchStream(strings.NewReader(in), Target{Resource: "secrets"})
	buf := make([]byte, 64<<10)
	n, err := s.Read(buf)
	require.NoError(t, err)
	want := expand(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:a>>"}}}`+"\n") +
		expand(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:b>>"}}}`+"\n") +
		expand(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:c>>"}}}`+"\n")
	assert.Equal(t, want, string(buf[:n]), "the three events in one read")
	_, err = s.Read(buf)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, 3, s.Stats().Fields)
}

func TestWatchStreamShapes(t *testing.T) {
	m := newMasker(t, Config{})
	pretty := "{\n  \"type\": \"ADDED\",\n  \"object\": {\n    \"kind\": \"Secret\",\n    \"apiVersion\": \"v1\",\n    \"data\": {\"k\": \"YQ==\"}\n  }\n}\n"
	s := m.WatchStream(iotest.OneByteReader(strings.NewReader(pretty+pretty)), Target{})
	out, err := io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(out), b64ph("a")))
	assert.NotContains(t, string(out), "YQ==")

	// Concatenated without separators, with braces and escapes inside strings.
	ev := `{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","data":{"x":"}{\"\\","password":"hunter2"}}}`
	s = m.WatchStream(iotest.HalfReader(strings.NewReader(ev+ev+ev)), Target{})
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat(expand(strings.Replace(ev, "hunter2", "<<P:hunter2>>", 1))+"\n", 3), string(out))
	assert.Equal(t, map[string]int{"password-assignment": 3}, s.Stats().Detectors)

	// Table watch events (kubectl get -w) hold rows whose objects are of the request's type.
	tev := `{"type":"ADDED","object":{"kind":"Table","apiVersion":"meta.k8s.io/v1","rows":[{"cells":["a"],"object":{"metadata":{"name":"a"},"data":{"k":"YQ=="}}}]}}`
	s = m.WatchStream(strings.NewReader(tev), Target{Resource: "secrets"})
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	assert.Contains(t, string(out), b64ph("a"))
}

func TestWatchStreamErrors(t *testing.T) {
	m := newMasker(t, Config{Limits: Limits{MaxEventBytes: 1024}})
	good := `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"YQ=="}}}` + "\n"
	tests := []struct {
		name    string
		in      io.Reader
		wantErr error
	}{
		{"truncated", strings.NewReader(good + `{"type":"ADDED","object":{"kind":"Secret","data":{"k":"Y2FuYXJ5`), ErrMalformed},
		{"garbage", strings.NewReader(good + "canary garbage\n"), ErrMalformed},
		{"invalid event", strings.NewReader(good + `{"type":"ADDED","object":{"data":{"k":canary}}}` + "\n"), ErrMalformed},
		{"too large", strings.NewReader(good + `{"type":"ADDED","object":{"data":{"k":"` + strings.Repeat("Y2FuYXJ5", 200) + `"}}}`), ErrTooLarge},
		{"read error", io.MultiReader(strings.NewReader(good+`{"type":"ADDED","object":{"data":{"k":"Y2FuYXJ5`), iotest.ErrReader(errors.New("connection reset"))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := m.WatchStream(tt.in, Target{Resource: "secrets"})
			out, err := io.ReadAll(s)
			require.Error(t, err)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Equal(t, expand(`{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","data":{"k":"<<B:a>>"}}}`)+"\n", string(out), "only the events before the error")
			assert.NotContains(t, strings.ToLower(err.Error()), "canary")
			_, err2 := s.Read(make([]byte, 10))
			assert.Equal(t, err, err2, "the error is sticky")
		})
	}
}

func TestTextStream(t *testing.T) {
	m := newMasker(t, Config{})
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDqO9LVVJJb8Ugvd3aq1iHnXO8TBmn1ogLQ7lXsVRgxYQAAAJhQ0WFyUNFh\n-----END OPENSSH PRIVATE KEY-----\n"
	in := "starting\npassword=hunter2\n" + pem + "ready token: Zk3qP9xW2vL8nR4t\nunterminated last line AKIAQ3EGRJ7XW5LN2TBV"
	want := expand("starting\npassword=<<P:hunter2>>\n<<P:" + strings.TrimSuffix(pem, "\n") + ">>\nready token: <<P:Zk3qP9xW2vL8nR4t>>\nunterminated last line <<P:AKIAQ3EGRJ7XW5LN2TBV>>")
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
	} {
		t.Run(name, func(t *testing.T) {
			s := m.TextStream(r)
			out, err := io.ReadAll(s)
			require.NoError(t, err)
			assert.Equal(t, want, string(out))
			assert.Equal(t, 4, s.Stats().Fields)
		})
	}
	whole, _ := m.Text(nil, []byte(in))
	assert.Equal(t, want, string(whole), "Text and TextStream agree")
}

func TestTextStreamLongLines(t *testing.T) {
	m := newMasker(t, Config{Limits: Limits{MaxLineBytes: 4 * lineOverlap}})
	limit := 4 * lineOverlap
	// A token right across the first chunk boundary of a line without blanks.
	token := ghToken("ghp_", "R7kQ2mZx9LpV4nT8wB3cY6dF1hJ5sA")
	for _, at := range []int{limit - 20, limit - lineOverlap - 10, limit/2 - 5} {
		line := strings.Repeat("a", at) + "=" + token + "," + strings.Repeat("b", 3*limit) + "\n"
		s := m.TextStream(iotest.HalfReader(strings.NewReader(line)))
		out, err := io.ReadAll(s)
		require.NoError(t, err)
		assert.NotContains(t, string(out), token[:12], "at %d", at)
		assert.NotContains(t, string(out), token[len(token)-12:], "at %d", at)
		assert.Equal(t, 1, s.Stats().Fields)
	}
	// With blanks, long lines are cut between words.
	words := strings.Repeat("lorem ipsum ", limit/3) + "password=hunter2 user=bob " + strings.Repeat("dolor ", limit/2) + "\n"
	out, err := io.ReadAll(m.TextStream(strings.NewReader(words)))
	require.NoError(t, err)
	assert.Equal(t, len(words)-len("hunter2")+placeholderLen, len(out))
	assert.NotContains(t, string(out), "hunter2")
}

func TestTextStreamKeyBlocks(t *testing.T) {
	m := newMasker(t, Config{Limits: Limits{MaxLineBytes: 4 * lineOverlap}})
	body := strings.Repeat("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n", 1000)
	in := "before\n-----BEGIN PRIVATE KEY-----\n" + body + "-----END PRIVATE KEY-----\nafter password=x1\n"
	s := m.TextStream(strings.NewReader(in))
	out, err := io.ReadAll(s)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "MIIEvQ")
	assert.True(t, strings.HasPrefix(string(out), "before\ngatehouse:masked:"), "%.80s", out)
	assert.True(t, strings.HasSuffix(string(out), expand("after password=<<P:x1>>\n")), "%.80s", out)
	assert.Equal(t, map[string]int{"pem-private-key": 1, "password-assignment": 1}, s.Stats().Detectors)

	// An unterminated block is masked to the end.
	s = m.TextStream(strings.NewReader("x\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oDKb3HSSQD\n"))
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	assert.NotContains(t, string(out), "MHcCAQEE")
	assert.Equal(t, 1, s.Stats().Fields)
}

// TestTextStreamKeyBlockAfterJSON starts a key block on a line that continues what looks like an
// indented JSON document: a line that ends with a brace, then the key's first line, which could
// be a negative number or a string. The key block is held to its end and masked whole, not
// masked line by line as text, which would leave the key's body as it was.
func TestTextStreamKeyBlockAfterJSON(t *testing.T) {
	m := newMasker(t, Config{})
	const body = "Rk9vYmFyU2VjcmV0S2V5Qm9keUxpbmVPbmU0Mg\nOnly-Key-Body-Line-Two\n"
	for _, in := range []string{
		"{\n-----BEGIN PRIVATE KEY-----\n" + body + "-----END PRIVATE KEY-----\n",
		"log {\n  \"-----BEGIN RSA PRIVATE KEY-----\n" + body + "-----END RSA PRIVATE KEY-----\"\n}\n",
		"[\n  1,\n-----BEGIN EC PRIVATE KEY-----\n" + body + "-----END EC PRIVATE KEY-----\n]\n",
		"{\n\"PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n" + body + "Private-MAC: 00\n",
	} {
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			out, err := io.ReadAll(m.TextStream(r))
			require.NoError(t, err)
			assert.NotContains(t, string(out), "Rk9vYmFy", "%q", in)
			assert.NotContains(t, string(out), "Only-Key-Body", "%q", in)
		}
		whole, _ := m.Text(nil, []byte(in))
		assert.NotContains(t, string(whole), "Only-Key-Body", "%q", in)
	}
}

func TestStreamDispatch(t *testing.T) {
	m := newMasker(t, Config{})
	in := fixture(t, "secret.json")

	s, err := m.Stream("application/json", "gzip", bytes.NewReader(gzipped(t, in)), Target{Resource: "secrets"})
	require.NoError(t, err)
	out, err := io.ReadAll(s)
	require.NoError(t, err)
	requireNoCanary(t, out)
	requireValidJSON(t, out)
	assert.Positive(t, s.Stats().Fields)

	s, err = m.Stream("application/json;stream=watch", "", bytes.NewReader(fixture(t, "watch.jsonl")), Target{Resource: "secrets"})
	require.NoError(t, err)
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	requireNoCanary(t, out)

	// The API server labels JSON watches plain application/json: the watch flag of the
	// Target, or document-by-document masking, handles them.
	watch := fixture(t, "watch.jsonl")
	want, _, err := m.Body("application/json", "", watch, Target{Resource: "secrets", Watch: true})
	require.NoError(t, err)
	requireNoCanary(t, want)
	for _, tg := range []Target{{Resource: "secrets", Watch: true}, {Resource: "secrets"}} {
		s, err = m.Stream("application/json", "", iotest.HalfReader(bytes.NewReader(watch)), tg)
		require.NoError(t, err)
		out, err = io.ReadAll(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(out), "%+v", tg)
	}
	_, _, err = m.Body("application/json", "", watch, Target{Resource: "secrets"})
	require.ErrorIs(t, err, ErrMalformed, "a body of several documents is a watch only when the Target says so")

	s, err = m.Stream("text/plain", "", strings.NewReader("password=hunter2\n"), Target{Resource: "pods", Subresource: "log"})
	require.NoError(t, err)
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, expand("password=<<P:hunter2>>\n"), string(out))

	s, err = m.Stream("application/json", "gzip", strings.NewReader("canary, not gzip"), Target{Resource: "secrets"})
	require.NoError(t, err, "nothing is read before the first Read")
	_, err = io.ReadAll(s)
	require.ErrorIs(t, err, ErrMalformed)

	s, err = m.Stream("application/json", "", strings.NewReader(`{"kind":"Secret","data":{"a":"Y2FuYXJ5"}`), Target{Resource: "secrets"})
	require.NoError(t, err)
	out, err = io.ReadAll(s)
	require.ErrorIs(t, err, ErrMalformed)
	assert.Empty(t, out)

	for _, ct := range []string{"application/vnd.kubernetes.protobuf", "application/cbor", "application/yaml", "application/octet-stream"} {
		_, err = m.Stream(ct, "", strings.NewReader("x"), Target{Resource: "secrets"})
		require.ErrorIs(t, err, ErrUnmaskable, ct)
	}
	_, err = m.Stream("application/json", "zstd", strings.NewReader("x"), Target{Resource: "secrets"})
	require.ErrorIs(t, err, ErrUnmaskable)

	s, err = m.Stream("application/octet-stream", "", strings.NewReader("raw bytes"), Target{Path: "/version"})
	require.NoError(t, err)
	out, err = io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, "raw bytes", string(out))
}

func TestConcurrentUse(t *testing.T) {
	m := newMasker(t, Config{})
	in := fixture(t, "secretlist.json")
	watch := fixture(t, "watch.jsonl")
	want, _, err := m.JSON(nil, in, Target{Resource: "secrets"})
	require.NoError(t, err)
	done := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			for j := 0; j < 20; j++ {
				out, _, err := m.JSON(nil, in, Target{Resource: "secrets"})
				if err == nil && !bytes.Equal(out, want) {
					err = errors.New("different output under concurrency")
				}
				if err == nil {
					_, err = io.ReadAll(m.WatchStream(bytes.NewReader(watch), Target{}))
				}
				if err != nil {
					done <- err
					return
				}
				m.Text(nil, []byte("password=hunter2"))
			}
			done <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		require.NoError(t, <-done)
	}
}

// TestStreamBuffersCarryNothingOver tries to get what one stream read into a later stream, now
// that streams hand their buffers and walkers back for reuse: streams that end (read to the
// end, closed with a partial event in hand, failed on a malformed event) are full of a secret,
// and the streams after them, which read in small pieces into the same buffers, must give
// exactly what masking their events on their own gives, with no byte of the secret.
func TestStreamBuffersCarryNothingOver(t *testing.T) {
	m := newMasker(t, Config{})
	secret := strings.Repeat("canary-secret-value-", 2500) // 50 KB: the buffers fill with it
	big := `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"big"},"stringData":{"password":"` + secret + `"}}}` + "\n"
	small := func(i int) string {
		return fmt.Sprintf(`{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm-%d"},"data":{"mode":"safe"}}}`, i) + "\n"
	}
	var later strings.Builder
	for i := range 40 {
		later.WriteString(small(i))
	}
	want, _, err := m.Body("application/json;stream=watch", "", []byte(later.String()), Target{Resource: "configmaps"})
	require.NoError(t, err)

	ends := map[string]func(t *testing.T){
		"read to the end": func(t *testing.T) {
			s := m.WatchStream(strings.NewReader(big+big), Target{Resource: "secrets"})
			out, err := io.ReadAll(s)
			require.NoError(t, err)
			requireNoCanary(t, out)
			require.NoError(t, s.Close())
		},
		"closed mid-event": func(t *testing.T) {
			s := m.WatchStream(strings.NewReader(big+big[:len(big)-100]), Target{Resource: "secrets"})
			_, err := s.Read(make([]byte, 10))
			require.NoError(t, err)
			require.NoError(t, s.Close())
			n, err := s.Read(make([]byte, 100))
			assert.Zero(t, n, "nothing after Close")
			assert.Error(t, err)
		},
		"malformed event": func(t *testing.T) {
			s := m.WatchStream(strings.NewReader(big+`{"type":"ADDED","object":{"stringData":{"password":"`+secret+`"}`+"]\n"), Target{Resource: "secrets"})
			out, err := io.ReadAll(s)
			require.ErrorIs(t, err, ErrMalformed)
			requireNoCanary(t, out)
			n, err := s.Read(make([]byte, 100))
			assert.Zero(t, n)
			assert.ErrorIs(t, err, ErrMalformed, "the error stays")
		},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"whole":    func(r io.Reader) io.Reader { return r },
	}
	for name, end := range ends {
		for rname, wrap := range readers {
			t.Run(name+"/"+rname, func(t *testing.T) {
				for range 20 {
					end(t)
					s := m.WatchStream(wrap(strings.NewReader(later.String())), Target{Resource: "configmaps"})
					var out []byte
					buf := make([]byte, 97) // reads that end mid-batch
					for {
						n, err := s.Read(buf)
						out = append(out, buf[:n]...)
						if err == io.EOF {
							break
						}
						require.NoError(t, err)
					}
					requireNoCanary(t, out)
					require.Equal(t, string(want), string(out))
					require.NoError(t, s.Close())
				}
			})
		}
	}
}

// TestWatchStreamIdleHoldsNoOutput checks that a watch whose events were all read holds no
// output buffer while it waits for the next one (a proxy holds many such watches), and that
// it gets one again for the next event.
func TestWatchStreamIdleHoldsNoOutput(t *testing.T) {
	m := newMasker(t, Config{})
	pr, pw := io.Pipe()
	s := m.WatchStream(pr, Target{Resource: "configmaps"})
	event := `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"v"}}}` + "\n"
	for range 3 {
		go func() { _, _ = pw.Write([]byte(event)) }()
		buf := make([]byte, 4<<10)
		n, err := s.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, event, string(buf[:n]))
		assert.Nil(t, s.out, "no output buffer held between events")
	}
	require.NoError(t, pw.Close())
	_, err := s.Read(make([]byte, 10))
	assert.Equal(t, io.EOF, err)
	assert.Nil(t, s.out)
}

// readStream reads s to its end in reads of n bytes, returning what came out and the error
// that ended it (nil for io.EOF).
func readStream(s *Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		k, err := s.Read(buf)
		out = append(out, buf[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// splitReader returns its data in the pieces given by cuts (offsets into data), then the rest.
type splitReader struct {
	data []byte
	cuts []int
	off  int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if s.off == len(s.data) {
		return 0, io.EOF
	}
	end := len(s.data)
	for _, c := range s.cuts {
		if c > s.off {
			end = min(end, c)
			break
		}
	}
	n := copy(p, s.data[s.off:end])
	s.off += n
	return n, nil
}

// requireWalkFirstSame checks that a watch stream masked with the walker finding where each
// event ends gives exactly what the splitter-first stream gives: the same output, error and
// counts, for input arriving as newReader hands it out.
func requireWalkFirstSame(t *testing.T, m *Masker, target Target, newReader func() io.Reader) ([]byte, error) {
	t.Helper()
	fast := m.docStream(newReader(), target, watchEventType, m.limits.MaxEventBytes, true)
	slow := m.docStream(newReader(), target, watchEventType, m.limits.MaxEventBytes, false)
	out, err := readStream(fast, 97)
	want, wantErr := readStream(slow, 97)
	require.Equal(t, string(want), string(out))
	if wantErr == nil {
		require.NoError(t, err)
	} else {
		require.EqualError(t, err, wantErr.Error())
	}
	require.Equal(t, slow.Stats(), fast.Stats())
	require.NoError(t, fast.Close())
	require.NoError(t, slow.Close())
	return out, err
}

// TestWatchStreamWalkerFindsEventEnd tries to make the walker, which masks an event straight
// from the input buffer and finds its end itself, read something of the next event (or of a
// later read) into its decision about this one: each stream must mask exactly as the stream
// that first delimits every event does, whole, read at every boundary, and in small reads.
func TestWatchStreamWalkerFindsEventEnd(t *testing.T) {
	m := newMasker(t, Config{})
	release := base64.StdEncoding.EncodeToString([]byte("canary-helm-release-payload"))
	helmEvent := func(typ string) string {
		return `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"sh.helm.release.v1.x.v1"},"data":{"release":"` + release + `"},"type":"` + typ + `"}}` + "\n"
	}
	// A Secret without a type, whose data must be replaced whole, before events that name
	// the Helm type: the walker must not take their type for its own.
	plain := `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"sh.helm.release.v1.x.v1"},"data":{"release":"` + release + `"}}}`
	// Nested objects that name their kind after their data start over again and again: alone,
	// the event exceeds its restart budget; a large event after it in the same read must not
	// lend it budget.
	nested := `{"data":{"k":"Y2FuYXJ5"},"p":"` + strings.Repeat("x", 5000) + `","kind":"Secret"}`
	for range 3 {
		nested = `{"items":[` + nested + `],"data":{"k":"Y2FuYXJ5"},"kind":"Secret"}`
	}
	large := `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"` + strings.Repeat("safe ", 60000) + `"}}}` + "\n"
	tests := []struct {
		name    string
		stream  string
		target  Target
		wantErr error
		check   func(t *testing.T, out []byte)
	}{
		{name: "helm type in the next event", stream: plain + helmEvent("helm.sh/release.v1"), target: Target{Resource: "secrets"},
			check: func(t *testing.T, out []byte) {
				first, _, _ := strings.Cut(string(out), "\n")
				assert.NotContains(t, first, release)
				assert.Contains(t, first, b64ph("canary-helm-release-payload"))
			}},
		{name: "escaped helm type in the next event", stream: plain + "\n" + helmEvent(`helm.sh\/release.v1`), target: Target{Resource: "secrets"},
			check: func(t *testing.T, out []byte) {
				first, _, _ := strings.Cut(string(out), "\n")
				assert.Contains(t, first, b64ph("canary-helm-release-payload"))
			}},
		{name: "helm events", stream: helmEvent("helm.sh/release.v1") + plain + helmEvent(`helm.sh/release.v\u0031`), target: Target{Resource: "secrets"}},
		{name: "an event crafted to look like two", target: Target{Resource: "configmaps"},
			stream: `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","data":{"x":"}}}\n{\"type\":\"ADDED\",\"object\":{\"kind\":\"Secret\",\"data\":{\"k\":\"Y2FuYXJ5\"}}}","password":"canary-hunter2"}}}` + "\n",
			check: func(t *testing.T, out []byte) {
				assert.Equal(t, 1, strings.Count(string(out), "\n"), "one event")
				assert.NotContains(t, string(out), "canary-hunter2")
			}},
		{name: "restart budget", stream: `{"type":"ADDED","object":` + nested + "}\n" + large, target: Target{Resource: "configmaps"}, wantErr: ErrMalformed},
		{name: "truncated", stream: plain + "\n" + plain[:len(plain)-3], target: Target{Resource: "secrets"}, wantErr: ErrMalformed},
		{name: "malformed after the end", stream: plain + "]" + plain, target: Target{Resource: "secrets"}, wantErr: ErrMalformed},
		{name: "malformed inside", stream: plain + "\n" + `{"type":"ADDED","object":{"kind":"Secret","data":{"k":Y2FuYXJ5}}}` + "\n" + plain, target: Target{Resource: "secrets"}, wantErr: ErrMalformed},
		{name: "fixture", stream: string(fixture(t, "watch.jsonl")), target: Target{Resource: "secrets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.stream)
			whole, err := requireWalkFirstSame(t, m, tt.target, func() io.Reader { return bytes.NewReader(data) })
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			}
			requireNoCanary(t, whole)
			if tt.check != nil {
				tt.check(t, whole)
			}
			requireWalkFirstSame(t, m, tt.target, func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data)) })
			requireWalkFirstSame(t, m, tt.target, func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) })
			if len(data) > 4096 {
				return // every boundary below: the short streams
			}
			for cut := 1; cut < len(data); cut++ {
				out, _ := requireWalkFirstSame(t, m, tt.target, func() io.Reader { return &splitReader{data: data, cuts: []int{cut}} })
				requireNoCanary(t, out)
			}
		})
	}
}

// FuzzWatchStreamWalkFirst compares watch streams masked with the walker finding where each
// event ends with the streams that delimit each event first, on arbitrary input in arbitrary
// pieces.
func FuzzWatchStreamWalkFirst(f *testing.F) {
	f.Add(fixture(f, "watch.jsonl"), []byte{7, 1, 200})
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Secret","data":{"k":"YQ=="}}}{"type":"DELETED"}`), []byte{3})
	f.Add([]byte("{\n\"type\":\"ADDED\",\n\"object\":{\"data\":{\"k\":\"}{\\\"\"}}}\n"), []byte{})
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Secret","data":{"release":"YQ=="}}}{"type":"ADDED","object":{"kind":"Secret","data":{},"type":"helm.sh\/release.v1"}}`), []byte{90})
	f.Add([]byte(`{"type":"ADDED","object":{"data":{"k":"YQ=="},"kind":"Secret"}}]{"x":1}`), []byte{1, 2, 3})
	m := newMasker(f, Config{Limits: Limits{MaxEventBytes: 1 << 12}})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		var offs []int
		off := 0
		for _, c := range cuts {
			off += int(c)
			offs = append(offs, off)
		}
		for _, target := range []Target{{Resource: "secrets"}, {Resource: "configmaps"}, {}} {
			requireWalkFirstSame(t, m, target, func() io.Reader { return &splitReader{data: data, cuts: offs} })
		}

		// Generated events with planted secrets, some not separated by newlines.
		g := newGen(data)
		var stream bytes.Buffer
		for range 3 {
			stream.WriteString(g.encode(obj{{"type", "ADDED"}, {"object", g.secret(g.r.bool())}}))
			if g.r.bool() {
				stream.WriteByte('\n')
			}
		}
		doc := stream.Bytes()
		out, _ := requireWalkFirstSame(t, m, Target{Resource: "secrets"}, func() io.Reader { return &splitReader{data: doc, cuts: offs} })
		g.requireNoPlanted(t, out, string(doc))
	})
}

// probeReader hands out its parts one per Read, calling probe before each part but the first:
// while the stream waits for more input.
type probeReader struct {
	parts []string
	probe func()
	n     int
}

func (p *probeReader) Read(b []byte) (int, error) {
	if p.n == len(p.parts) {
		return 0, io.EOF
	}
	if p.n > 0 {
		p.probe()
	}
	n := copy(b, p.parts[p.n])
	p.n++
	return n, nil
}

// TestWatchStreamPartialEventHoldsNoOutput checks that a watch waiting for the rest of an
// event, whose start the walker tried to mask, holds no output buffer meanwhile.
func TestWatchStreamPartialEventHoldsNoOutput(t *testing.T) {
	m := newMasker(t, Config{})
	event := `{"type":"ADDED","object":{"kind":"ConfigMap","apiVersion":"v1","data":{"k":"v"}}}` + "\n"
	var s *Reader
	waits := 0
	src := &probeReader{parts: []string{event[:30], event[30:60], event[60:]}, probe: func() {
		waits++
		assert.Nil(t, s.out, "no output buffer while the event is incomplete")
	}}
	s = m.WatchStream(src, Target{Resource: "configmaps"})
	out, err := io.ReadAll(s)
	require.NoError(t, err)
	assert.Equal(t, event, string(out))
	assert.Equal(t, 2, waits)
}

// secretsAfterLargeEvent is a watch stream of a Secret event of size bytes followed by size
// bytes of small Secret events: after the large event the stream's input buffer has grown to
// its size, and one read fills it with thousands of events.
func secretsAfterLargeEvent(size int) []byte {
	large := `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","stringData":{"k":"` + strings.Repeat("x", size) + `"}}}` + "\n"
	small := `{"type":"ADDED","object":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"k":"Y2FuYXJ5"}}}` + "\n"
	return []byte(large + strings.Repeat(small, size/len(small)))
}

// TestWatchStreamSecretsAfterLargeEvent masks thousands of Secret events that are in the input
// buffer together: the walker, which masks each from the buffer, looks ahead for a Helm release
// type from each Secret's data to the end of the buffer, and must not read the buffer again
// for each of them (it took 10 s for 4 MB, and grows with the square of the size; now about
// 0.1 s: BenchmarkWatchStreamSecretsAfterLargeEvent shows time linear in the size).
func TestWatchStreamSecretsAfterLargeEvent(t *testing.T) {
	m := newMasker(t, Config{})
	data := secretsAfterLargeEvent(4 << 20)
	out, err := requireWalkFirstSame(t, m, Target{Resource: "secrets"}, func() io.Reader { return bytes.NewReader(data) })
	require.NoError(t, err)
	requireNoCanary(t, out)
}

// BenchmarkWatchStreamSecretsAfterLargeEvent masks the stream of TestWatchStreamSecretsAfterLargeEvent
// at 1, 4 and 8 MB, against json.Valid over its events: the ratio stays flat while the work is
// linear.
func BenchmarkWatchStreamSecretsAfterLargeEvent(b *testing.B) {
	m := newMasker(b, Config{})
	for _, size := range []int{1 << 20, 4 << 20, 8 << 20} {
		data := secretsAfterLargeEvent(size)
		b.Run(fmt.Sprintf("MB=%d/baseline=json.Valid", size>>20), validBench(data, true))
		b.Run(fmt.Sprintf("MB=%d/mask", size>>20), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s := m.WatchStream(bytes.NewReader(data), Target{Resource: "secrets"})
				if _, err := io.Copy(io.Discard, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
