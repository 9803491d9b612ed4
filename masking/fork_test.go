package masking

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// masked is what masking a body did, as a test compares it.
type masked struct {
	out    string
	stats  Stats
	err    error
	values []string // the SecretValue calls: value, then placeholder
}

// maskBody masks doc with m as the proxy masks a response read whole.
func maskBody(m *Masker, doc []byte, t Target) masked {
	var r masked
	t.SecretValue = func(v, p []byte) { r.values = append(r.values, string(v), string(p)) }
	out, st, err := m.BodyInto(nil, "application/json", "", doc, t)
	r.out, r.stats, r.err = string(out), st, err
	return r
}

// forkTrace counts the second halves of lists a Masker started and took.
type forkTrace struct {
	mu                       sync.Mutex
	started, released, taken int
}

func (f *forkTrace) trace(started, taken bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case started:
		f.started++
	case taken:
		f.released++
		f.taken++
	default:
		f.released++
	}
}

// forkingMasker returns a Masker that splits every list and one that splits none, with the same
// key, and the trace of the first.
func forkingMasker(t testing.TB) (split, whole *Masker, tr *forkTrace) {
	split, whole = newMasker(t, Config{}), newMasker(t, Config{})
	tr = &forkTrace{}
	split.forkMin, split.forkTrace = 1, tr.trace
	whole.forkMin = 0
	return split, whole, tr
}

// listOf returns a list of kind with the items, compact as the API server writes it.
func listOf(kind string, items ...string) []byte {
	return fmt.Appendf(nil, `{"kind":%q,"apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[%s]}`, kind, strings.Join(items, ","))
}

func secretItem(i int, value string) string {
	return fmt.Sprintf(`{"metadata":{"name":"s-%d","namespace":"default"},"data":{"token":%q,"ca.crt":"Q0EgYnVuZGxl"},"type":"Opaque"}`, i, value)
}

// TestForkSameAsOneGoroutine masks lists split in two halves at once and whole, and requires the
// same bytes, Stats, error and SecretValue calls in the same order, whether the second half is
// taken or thrown away.
func TestForkSameAsOneGoroutine(t *testing.T) {
	secrets := make([]string, 40)
	for i := range secrets {
		secrets[i] = secretItem(i, "c2VjcmV0LXZhbHVlLQ"+strings.Repeat("A", i%5)+"==")
	}
	// A large item whose nested array of objects opens like an item (a StatefulSet's
	// volumeClaimTemplates): the second half would start inside it, as a Secret of the list.
	pad := strings.Repeat("p", 4000)
	nested := `{"metadata":{"name":"web","annotations":{"pad":"` + pad + `"}},"spec":{"volumeClaimTemplates":[` +
		`{"metadata":{"name":"a"},"data":{"k":"dmlzaWJsZQ=="}},{"metadata":{"name":"b"},"data":{"k":"dmlzaWJsZQ=="}}]}}`
	// A string that holds what an item boundary looks like, escaped as JSON escapes it.
	escaped := `{"metadata":{"name":"e","annotations":{"note":"},{\"metadata\":{\"name\":\"x\"}` + pad + `"}},"data":{"k":"c2VjcmV0"}}`
	broken := strings.Replace(secretItem(39, "c2VjcmV0"), `"type"`, `"type":`, 1)
	// Objects that name their kind after their data are masked again, within a budget that is
	// the document's: here the second half alone stays within it, both halves do not.
	restarted := make([]string, 0, 170)
	item := `{"data":{"k":"` + strings.Repeat("A", 2000) + `"},"kind":"ConfigMap"}`
	for range 150 {
		restarted = append(restarted, item)
	}
	for range 20 {
		restarted = append(restarted, `{"items":[`+item+`],"kind":"ConfigMap"}`)
	}

	tests := []struct {
		name   string
		doc    []byte
		target Target
		forks  int  // second halves started: 0 or 1
		taken  bool // whether the second half is taken
		err    bool
	}{
		{forks: 1, name: "secret list", doc: listOf("SecretList", secrets...), target: Target{Version: "v1", Resource: "secrets"}, taken: true},
		{forks: 1, name: "secret list without a hint", doc: listOf("SecretList", secrets...), taken: true},
		{forks: 1, name: "config map list", doc: maskingtest.ConfigMapList(16 << 10), target: Target{Version: "v1", Resource: "configmaps"}, taken: true},
		{forks: 1, name: "secret list read as config maps", doc: listOf("SecretList", secrets...), target: Target{Version: "v1", Resource: "configmaps"}, taken: true},
		{forks: 1, name: "kind after the items", doc: []byte(`{"apiVersion":"v1","items":[` + strings.Join(secrets, ",") + `],"kind":"SecretList"}`),
			target: Target{Version: "v1", Resource: "configmaps"}, taken: true},
		{forks: 1, name: "second half starts inside an item", doc: listOf("SecretList", secretItem(0, "c2VjcmV0"), nested, secretItem(2, "c2VjcmV0")), target: Target{Version: "v1", Resource: "secrets"}},
		{forks: 1, name: "escaped boundary in a string", doc: listOf("SecretList", secretItem(0, "c2VjcmV0"), escaped, secretItem(2, "c2VjcmV0")),
			target: Target{Version: "v1", Resource: "secrets"}, taken: true},
		{forks: 1, name: "malformed in the second half", doc: listOf("SecretList", append(secrets[:39:39], broken)...), taken: true, err: true},
		{forks: 1, name: "malformed in the first half", doc: listOf("SecretList", append([]string{broken}, secrets[1:]...)...), err: true},
		{forks: 1, name: "truncated", doc: listOf("SecretList", secrets...)[:2000], taken: true, err: true},
		{forks: 1, name: "data after the list", doc: append(listOf("SecretList", secrets...), "{}"...), taken: true, err: true},
		{forks: 1, name: "budget of the document spent by both halves", doc: listOf("SecretList", restarted...),
			target: Target{Version: "v1", Resource: "secrets"}, taken: true, err: true},
		{name: "no item starts after the middle", doc: listOf("SecretList", secrets[0], secrets[1])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			split, whole, tr := forkingMasker(t)
			want := maskBody(whole, tt.doc, tt.target)
			doc := bytes.Clone(tt.doc)
			got := maskBody(split, doc, tt.target)
			clear(doc) // with -race: nothing reads it once masked
			if tt.err {
				// A document that fails to mask may have had more of its values reported.
				require.ErrorIs(t, want.err, ErrMalformed)
				require.ErrorIs(t, got.err, ErrMalformed)
				assert.Empty(t, got.out)
			} else {
				require.NoError(t, want.err)
				require.NoError(t, got.err)
				requireNoCanary(t, []byte(got.out), "c2VjcmV0")
				assert.Equal(t, want.out, got.out)
				assert.Equal(t, want.stats, got.stats)
				assert.Equal(t, want.values, got.values)
			}
			assert.Equal(t, tt.forks, tr.released, "second halves")
			if tt.taken {
				assert.Equal(t, 1, tr.taken, "the second half is taken")
			} else {
				assert.Zero(t, tr.taken, "the second half is thrown away")
			}
		})
	}
}

// TestForkLargeLists splits the lists the proxy's benchmarks read, 1 MB large, and no list
// smaller than defaultForkMin, nor any on a machine with one CPU.
func TestForkLargeLists(t *testing.T) {
	tests := []struct {
		name   string
		doc    []byte
		target Target
		forks  bool
	}{
		{name: "secrets", doc: maskingtest.SecretList(1 << 20), target: Target{Version: "v1", Resource: "secrets"}, forks: true},
		{name: "config maps", doc: maskingtest.ConfigMapList(1 << 20), target: Target{Version: "v1", Resource: "configmaps"}, forks: true},
		{name: "small", doc: maskingtest.SecretList(defaultForkMin - 1<<10), target: Target{Version: "v1", Resource: "secrets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, whole := newMasker(t, Config{}), newMasker(t, Config{})
			whole.forkMin = 0
			tr := &forkTrace{}
			m.forkTrace = tr.trace
			got := maskBody(m, tt.doc, tt.target)
			require.NoError(t, got.err)
			assert.Equal(t, maskBody(whole, tt.doc, tt.target), got)
			if tt.forks && runtime.GOMAXPROCS(0) > 1 {
				assert.Equal(t, 1, tr.taken)
			} else {
				assert.Zero(t, tr.released)
			}
		})
	}
}

// TestForkPanic makes the second half panic: the panic reaches the caller's goroutine, where
// the HTTP server recovers it, and does not end the process; the Masker goes on working.
func TestForkPanic(t *testing.T) {
	split, whole, _ := forkingMasker(t)
	doc := maskingtest.SecretList(32 << 10)
	target := Target{Version: "v1", Resource: "secrets"}
	split.forkTrace = func(started, _ bool) {
		if started {
			panic("second half")
		}
	}
	require.PanicsWithValue(t, "second half", func() { maskBody(split, doc, target) })

	split.forkTrace = nil
	got := maskBody(split, doc, target)
	require.NoError(t, got.err)
	assert.Equal(t, maskBody(whole, doc, target), got)
}

// FuzzFork masks lists of fuzzed items split in two halves at once and whole.
func FuzzFork(f *testing.F) {
	f.Add([]byte(secretItem(1, "c2VjcmV0")), []byte(`{"metadata":{"name":"x"},"data":{"a":"YQ=="}}`), uint8(8))
	f.Add([]byte(`{"metadata":{"name":"a"},"spec":{"t":[{"metadata":{}},{"metadata":{}}]}}`), []byte(`{"metadata":{}}`), uint8(3))
	f.Add([]byte(`{"metadata":{"name":"a"},"kind":"ConfigMap","data":{"password":"x"}}`), []byte(`{"metadata":{"annotations":{"a":"},{\"metadata\":"}}}`), uint8(5))
	f.Add([]byte(`{"metadata":{"name":"a"}},{"metadata":`), []byte(`"x"]}`), uint8(2))
	split, whole, _ := forkingMasker(f)
	f.Fuzz(func(t *testing.T, a, b []byte, n uint8) {
		items := make([]string, 0, int(n%16)+2)
		for k := range cap(items) {
			if k%3 == 2 {
				items = append(items, string(b))
			} else {
				items = append(items, string(a))
			}
		}
		for _, kind := range []string{"SecretList", "ConfigMapList"} {
			doc := listOf(kind, items...)
			want, got := maskBody(whole, doc, Target{}), maskBody(split, doc, Target{})
			require.Equal(t, want.err == nil, got.err == nil, "whole: %v, split: %v", want.err, got.err)
			if want.err == nil {
				require.Equal(t, want, got)
			}
		}
	})
}
