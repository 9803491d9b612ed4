package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
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

// forkTrace counts the second halves of lists a Masker started, took and dropped.
type forkTrace struct {
	mu                               sync.Mutex
	started, claimed, taken, dropped int
}

func (f *forkTrace) trace(event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch event {
	case "start":
		f.started++
	case "claimed":
		f.claimed++
	case "taken":
		f.taken++
	case "dropped":
		f.dropped++
	}
}

// released is the number of second halves released, taken or not.
func (f *forkTrace) released() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.taken + f.dropped
}

// forkingMasker returns a Masker that splits every list and one that splits none, with the same
// key, and the trace of the first.
func forkingMasker(t testing.TB) (split, whole *Masker, tr *forkTrace) {
	t.Helper()
	split, whole = newMasker(t, Config{}), newMasker(t, Config{})
	tr = &forkTrace{}
	split.forkMin, split.forkTrace, split.forkWait = 1, tr.trace, true
	whole.forkMin = 0
	return split, whole, tr
}

// listOf returns a list of kind with the items, compact as the API server writes it.
func listOf(kind string, items ...string) []byte {
	return fmt.Appendf(nil, `{"kind":%q,"apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[%s]}`, kind, strings.Join(items, ","))
}

// secretItem returns the i-th item of a SecretList with value, base64, as its token.
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
			assert.Equal(t, tt.forks, tr.released(), "second halves")
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
			m.forkTrace, m.forkWait = tr.trace, true
			got := maskBody(m, tt.doc, tt.target)
			require.NoError(t, got.err)
			assert.Equal(t, maskBody(whole, tt.doc, tt.target), got)
			if tt.forks && runtime.GOMAXPROCS(0) > 1 {
				assert.Equal(t, 1, tr.taken)
			} else {
				assert.Zero(t, tr.released())
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
	split.forkTrace = func(event string) {
		if event == "start" {
			panic("second half")
		}
	}
	defer func() {
		r := recover()
		require.NotNil(t, r, "the panic reaches the caller")
		assert.Contains(t, r, "masking: second half of a list: second half")
		assert.Contains(t, r, "masking.(*fork).run", "with the stack of the second half")

		split.forkTrace = nil
		got := maskBody(split, doc, target)
		require.NoError(t, got.err)
		assert.Equal(t, maskBody(whole, doc, target), got)
	}()
	maskBody(split, doc, target)
}

// FuzzFork masks lists of fuzzed items split in two halves at once and whole.
func FuzzFork(f *testing.F) {
	f.Add([]byte(secretItem(1, "c2VjcmV0")), []byte(`{"metadata":{"name":"x"},"data":{"a":"YQ=="}}`), uint8(8))
	f.Add([]byte(`{"metadata":{"name":"a"},"spec":{"t":[{"metadata":{}},{"metadata":{}}]}}`), []byte(`{"metadata":{}}`), uint8(3))
	f.Add([]byte(`{"metadata":{"name":"a"},"kind":"ConfigMap","data":{"password":"x"}}`), []byte(`{"metadata":{"annotations":{"a":"},{\"metadata\":"}}}`), uint8(5))
	f.Add([]byte(`{"metadata":{"name":"a"}},{"metadata":`), []byte(`"x"]}`), uint8(2))
	split, whole, _ := forkingMasker(f)
	f.Fuzz(func(t *testing.T, a, b []byte, n uint8) {
		items := fuzzItems(a, b, int(n%16)+2)
		for _, kind := range []string{"SecretList", "ConfigMapList"} {
			doc := listOf(kind, items...)
			for _, target := range []Target{{}, {Version: "v1", Resource: "secrets"}, {Version: "v1", Resource: "configmaps"}} {
				want, got := maskBody(whole, doc, target), maskBody(split, doc, target)
				require.Equal(t, want.err == nil, got.err == nil, "whole: %v, split: %v", want.err, got.err)
				if want.err == nil {
					require.Equal(t, want, got)
				}
			}
		}
	})
}

// fuzzItems returns n items of a list: a, a, b, a, a, b ...
func fuzzItems(a, b []byte, n int) []string {
	items := make([]string, 0, n)
	for k := range n {
		if k%3 == 2 {
			items = append(items, string(b))
		} else {
			items = append(items, string(a))
		}
	}
	return items
}

// TestForkClaimedByTheCaller has the caller reach the second half before its goroutine runs,
// as on a busy machine: the caller masks it itself rather than wait, and the goroutine, when it
// runs, does nothing.
func TestForkClaimedByTheCaller(t *testing.T) {
	split, whole, tr := forkingMasker(t)
	split.forkWait = false
	claimed := make(chan struct{})
	split.forkTrace = func(event string) {
		tr.trace(event)
		switch event {
		case "run":
			<-claimed
		case "claimed":
			close(claimed)
		}
	}
	doc := maskingtest.SecretList(64 << 10)
	target := Target{Version: "v1", Resource: "secrets"}
	got := maskBody(split, doc, target)
	require.NoError(t, got.err)
	assert.Equal(t, maskBody(whole, doc, target), got)
	assert.Equal(t, 1, tr.claimed)
	assert.Zero(t, tr.started, "the goroutine masks nothing")
	assert.Equal(t, 1, tr.dropped)
}

// TestForkDiscardedPanic has a second half panic that started inside an item and is thrown
// away: one goroutine would not have walked what it walked, so the request is masked as one
// goroutine masks it.
func TestForkDiscardedPanic(t *testing.T) {
	pad := strings.Repeat("p", 4000)
	nested := `{"metadata":{"name":"web","annotations":{"pad":"` + pad + `"}},"spec":{"volumeClaimTemplates":[` +
		`{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}}`
	doc := listOf("SecretList", secretItem(0, "c2VjcmV0"), nested, secretItem(2, "c2VjcmV0"))
	split, whole, tr := forkingMasker(t)
	split.forkTrace = func(event string) {
		tr.trace(event)
		if event == "start" {
			panic("reachable only from a guessed start")
		}
	}
	target := Target{Version: "v1", Resource: "secrets"}
	got := maskBody(split, doc, target)
	require.NoError(t, got.err)
	assert.Equal(t, maskBody(whole, doc, target), got)
	assert.Equal(t, 1, tr.dropped)
}

// TestForkClearsItsBuffer masks a list that names its kind after its items, read as another
// resource: it is walked for the hinted type, its second half taken, and walked again for the
// kind it names. What the first walk left unmasked for the wrong type does not stay in the
// buffer a later list reuses.
func TestForkClearsItsBuffer(t *testing.T) {
	value := base64.StdEncoding.EncodeToString([]byte("value-no-detector-finds-0123456789"))
	items := make([]string, 40)
	for i := range items {
		items[i] = fmt.Sprintf(`{"metadata":{"name":"s-%d","namespace":"default"},"data":{"k":%q,"password":"aHVudGVyMg=="},"type":"Opaque"}`, i, value)
	}
	doc := []byte(`{"apiVersion":"v1","items":[` + strings.Join(items, ",") + `],"kind":"SecretList"}`)
	split, _, tr := forkingMasker(t)
	var f *fork
	// The race detector has sync.Pool drop some of what it is given: mask until one is kept.
	for range 50 {
		got := maskBody(split, doc, Target{Version: "v1", Resource: "configmaps"})
		require.NoError(t, got.err)
		require.NotContains(t, got.out, value)
		if f, _ = split.forks.Get().(*fork); f != nil {
			break
		}
	}
	require.NotNil(t, f, "the fork is pooled")
	require.Positive(t, tr.taken, "the first walk's second half is taken")
	require.NotZero(t, cap(f.buf), "with its buffer")
	assert.NotContains(t, string(f.buf[:cap(f.buf)]), value, "a Secret value outlives its response in a pooled buffer")
}

// crItem returns the i-th item of a list of custom resources, as the API server writes them:
// apiVersion and kind first, and managedFields entries that open with an apiVersion too.
func crItem(i int) string {
	return fmt.Sprintf(`{"apiVersion":"stable.example.com/v1","kind":"CronTab","metadata":{"generation":1,"managedFields":[`+
		`{"apiVersion":"stable.example.com/v1","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:cron":{}}},"manager":"kubectl","operation":"Update"},`+
		`{"apiVersion":"stable.example.com/v1","fieldsType":"FieldsV1","fieldsV1":{"f:status":{}},"manager":"controller","operation":"Update"}],`+
		`"name":"ct-%d","namespace":"default","ownerReferences":[{"apiVersion":"stable.example.com/v1","kind":"CronJob","name":"a","uid":"1"},`+
		`{"apiVersion":"stable.example.com/v1","kind":"CronJob","name":"b","uid":"2"}]},"spec":{"cronSpec":"* * * * */5","password":"hunter2-%d","pad":"%s"}}`,
		i, i, strings.Repeat("x", 200+i%50))
}

// TestForkCustomResources splits lists of custom resources of many lengths, whose items'
// nested objects open as the items do up to their first member, and lists whose items hold
// Helm releases, last-applied annotations and exempted values, with several hints: the second
// half is taken every time, and the result is one goroutine's.
func TestForkCustomResources(t *testing.T) {
	split, whole, tr := forkingMasker(t)
	target := Target{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}
	for n := 40; n < 60; n++ {
		items := make([]string, n)
		for i := range items {
			items[i] = crItem(i)
		}
		doc := []byte(`{"apiVersion":"stable.example.com/v1","items":[` + strings.Join(items, ",") + `],"kind":"CronTabList","metadata":{"resourceVersion":"7"}}`)
		got := maskBody(split, doc, target)
		require.NoError(t, got.err)
		require.NotContains(t, got.out, "hunter2")
		require.Equal(t, maskBody(whole, doc, target), got)
	}
	assert.Equal(t, 20, tr.taken, "every second half is taken")
}

// secretsOfManyShapes returns n Secrets, one in four of each: a Helm release, one with a
// last-applied annotation holding a password, one whose token is value (base64), and
// default/keep, whose token an exemption keeps.
func secretsOfManyShapes(t testing.TB, n int, value string) []string {
	t.Helper()
	payload := base64.StdEncoding.EncodeToString(EncodeHelmRelease(helmRelease(t)))
	items := make([]string, 0, n)
	for i := range n {
		switch i % 4 {
		case 0:
			items = append(items, fmt.Sprintf(`{"metadata":{"name":"sh.helm.release.v1.x.v%d","namespace":"shop"},"data":{"release":%q},"type":"helm.sh/release.v1"}`, i, payload))
		case 1:
			inner, err := json.Marshal(fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"la-%d"},"stringData":{"password":"hunter2-%d"}}`, i, i))
			require.NoError(t, err)
			items = append(items, fmt.Sprintf(`{"metadata":{"name":"la-%d","annotations":{"kubectl.kubernetes.io/last-applied-configuration":%s}},"data":{"k":"c2VjcmV0"},"type":"Opaque"}`, i, inner))
		case 2:
			items = append(items, secretItem(i, value))
		default:
			items = append(items, `{"metadata":{"name":"keep","namespace":"default"},"data":{"token":"a2VlcA=="},"type":"Opaque"}`)
		}
	}
	return items
}

// TestForkItemsOfManyShapes splits lists of Helm release Secrets, Secrets with last-applied
// annotations and exempted values, with the kind before and after the items, for several
// hints: the result is one goroutine's.
func TestForkItemsOfManyShapes(t *testing.T) {
	items := secretsOfManyShapes(t, 60, "c2VjcmV0")
	cfg := Config{Exemptions: []Exemption{{Kind: "Secret", Name: "keep", Namespace: "default", Keys: []string{"token"}, Detectors: []string{"secret-data", "secret-string-data"}}}}
	split, whole := newMasker(t, cfg), newMasker(t, cfg)
	tr := &forkTrace{}
	split.forkMin, split.forkTrace, split.forkWait = 1, tr.trace, true
	whole.forkMin = 0
	docs := [][]byte{listOf("SecretList", items...), []byte(`{"apiVersion":"v1","items":[` + strings.Join(items, ",") + `],"kind":"SecretList"}`)}
	for _, doc := range docs {
		for _, target := range []Target{{Version: "v1", Resource: "secrets"}, {}, {Version: "v1", Resource: "configmaps"}} {
			want, got := maskBody(whole, doc, target), maskBody(split, doc, target)
			require.NoError(t, want.err)
			require.NotContains(t, got.out, "hunter2")
			assert.Equal(t, want, got)
		}
	}
	assert.GreaterOrEqual(t, tr.taken, 6)

	// A Table is not split: its rows are not a list's items.
	table := fmt.Appendf(nil, `{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[{"name":"Name","type":"string"}],"rows":[%s]}`,
		strings.Repeat(`{"cells":["a"],"object":`+secretItem(1, "c2VjcmV0")+`},`, 40)+`{"cells":["b"]}`)
	released := tr.released()
	want, got := maskBody(whole, table, Target{Version: "v1", Resource: "secrets"}), maskBody(split, table, Target{Version: "v1", Resource: "secrets"})
	require.NoError(t, got.err)
	assert.Equal(t, want, got)
	assert.Equal(t, released, tr.released())
}
