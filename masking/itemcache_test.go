package masking

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// uncachedMasker returns a Masker with cfg and its item cache off.
func uncachedMasker(t testing.TB, cfg Config) *Masker {
	t.Helper()
	cfg.Limits.ItemCacheBytes = -1
	m := newMasker(t, cfg)
	require.Nil(t, m.items)
	return m
}

// itemCacheCorpus returns lists of many shapes: typed and untyped, Secrets whose values go to
// the hook from their data, exemptions, last-applied documents and Helm releases, ConfigMaps,
// Pods with commands, custom resources, lists whose kind comes after the items.
func itemCacheCorpus(t *testing.T) map[string][]byte {
	mixed := secretsOfManyShapes(t, 24, "c2VjcmV0LXZhbHVl")
	secrets := make([]string, 30)
	for i := range secrets {
		secrets[i] = secretItem(i%10, "c2VjcmV0LXZhbHVlLQ"+strings.Repeat("A", i%5)+"==") // repeated items
	}
	escaped := `{"metadata":{"name":"e\u0041","annotations":{"note":"},{\"metadata\":{\"name\":\"x\"}"}},"data":{"k":"c2Vj\/cmV0","s":"\u0063GFzcw=="},"stringData":{"p":"pa\"ss"}}`
	widgets := []string{
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"apiToken":"widget-token-value-1","note":"hello"}}`,
		`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w2"},"spec":{"apiToken":"widget-token-value-2","note":"hello"}}`,
	}
	kindless := `{"metadata":{"name":"db","namespace":"prod"},"data":{"password":"cGFzc3dvcmQtdmFsdWU=","host":"ZGIucHJvZA=="}}`
	corpus := map[string][]byte{
		"secrets":               listOf("SecretList", secrets...),
		"mixed secrets":         listOf("SecretList", mixed...),
		"kind after the items":  []byte(`{"apiVersion":"v1","items":[` + strings.Join(secrets, ",") + `],"kind":"SecretList"}`),
		"escapes":               listOf("SecretList", escaped, escaped, secrets[0]),
		"kind-less items":       listOf("List", kindless, kindless),
		"config maps":           maskingtest.ConfigMapList(64 << 10),
		"pods":                  maskingtest.PodList(64 << 10),
		"secret list generated": maskingtest.SecretList(64 << 10),
		"large secret list":     maskingtest.SecretList(1 << 20), // split in two halves
		"widgets":               listOf("WidgetList", widgets...),
		"items that are no objects": []byte(`{"kind":"List","items":["c2VjcmV0",1,null,[{"password":"x"}],` +
			`{"metadata":{"name":"a"},"data":{"password":"cGFzcw=="}}]}`),
		"nested list": []byte(`{"kind":"List","items":[{"kind":"SecretList","items":[` + secrets[1] + `]},` + secrets[2] + `]}`),
		"table": fmt.Appendf(nil, `{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[{"name":"Name","type":"string"}],"rows":[%s]}`,
			strings.Repeat(`{"cells":["a"],"object":`+secretItem(1, "c2VjcmV0")+`},`, 4)+`{"cells":["b"]}`),
	}
	for _, name := range []string{"secretlist.json", "configmap.json", "pod.json", "audit-eventlist.json", "table.json"} {
		doc, err := os.ReadFile("testdata/" + name)
		require.NoError(t, err)
		corpus[name] = doc
	}
	return corpus
}

// itemCacheConfig has an exemption, a field rule for a custom resource and a detector, so that
// the items of a list are masked differently by type, name and key.
var itemCacheConfig = Config{
	Exemptions: []Exemption{{Kind: "Secret", Name: "keep", Namespace: "default", Keys: []string{"token"}, Detectors: []string{"secret-data", "secret-string-data"}}},
	Rules:      []FieldRule{{Name: "widget-token", Group: "example.com", Kind: "Widget", Paths: []string{"spec.apiToken"}}},
}

// itemCacheTargets are the requests a list is read for: each gives its items another type.
var itemCacheTargets = []Target{
	{}, {Version: "v1", Resource: "secrets"}, {Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "pods"},
	{Group: "example.com", Version: "v1", Resource: "widgets"}, {Version: "v1", Resource: "secrets", Subresource: "status"},
}

// TestItemCacheSameAsMaskingAgain masks every list of the corpus for every target, three times
// over and in turns, with one Masker whose cache remembers the items, and requires what a
// Masker without the cache does: the same bytes, Stats, error and SecretValue calls in the same
// order. The same items read for another type are masked for that type.
func TestItemCacheSameAsMaskingAgain(t *testing.T) {
	corpus := itemCacheCorpus(t)
	cached, uncached := newMasker(t, itemCacheConfig), uncachedMasker(t, itemCacheConfig)
	for round := range 3 {
		for name, doc := range corpus {
			for _, target := range itemCacheTargets {
				want := maskBody(uncached, doc, target)
				got := maskBody(cached, bytes.Clone(doc), target)
				require.Equal(t, want.err == nil, got.err == nil, "%s, %+v, round %d: %v, %v", name, target, round, want.err, got.err)
				if want.err == nil {
					require.Equal(t, want, got, "%s, %+v, round %d", name, target, round)
					requireNoCanary(t, []byte(got.out), "hunter2", "c2VjcmV0LXZhbHVl", "cGFzc3dvcmQtdmFsdWU=")
				}
				// Without the hook too: another scope.
				target.SecretValue = nil
				w, _, werr := uncached.BodyInto(nil, "application/json", "", doc, target)
				g, _, gerr := cached.BodyInto(nil, "application/json", "", doc, target)
				require.Equal(t, werr == nil, gerr == nil)
				require.Equal(t, string(w), string(g), "%s, %+v, round %d, no hook", name, target, round)
			}
		}
	}
	st := cached.ItemCacheStats()
	assert.Positive(t, cacheEntries(cached.items), "the cache keeps items")
	assert.Greater(t, st.Hits, st.Misses, "items are taken from the cache")
	assert.Equal(t, cacheBytes(cached.items), st.Bytes)
}

// TestItemCacheTypeFromTheRequest reads items that do not name their kind first as ConfigMaps,
// whose keys are searched only for credentials, then the same bytes as Secrets, whose every
// value is hidden: a cache that forgot the type would send the Secret's values in clear.
func TestItemCacheTypeFromTheRequest(t *testing.T) {
	m := newMasker(t, Config{})
	item := `{"metadata":{"name":"app","namespace":"prod","uid":"0b5e6f4e"},"data":{"host":"ZGItcHJpbWFyeQ==","port":"NTQzMg=="}}`
	doc := listOf("List", item, item)
	asConfigMaps := maskBody(m, doc, Target{Version: "v1", Resource: "configmaps"})
	require.NoError(t, asConfigMaps.err)
	require.Contains(t, asConfigMaps.out, "ZGItcHJpbWFyeQ==", "a ConfigMap's host is no secret")

	asSecrets := maskBody(m, doc, Target{Version: "v1", Resource: "secrets"})
	require.NoError(t, asSecrets.err)
	assert.NotContains(t, asSecrets.out, "ZGItcHJpbWFyeQ==")
	assert.NotContains(t, asSecrets.out, "NTQzMg==")
	assert.Equal(t, []string{"db-primary", "5432", "db-primary", "5432"}, everyOther(asSecrets.values))

	// And the other way round, on a Masker that saw them as Secrets first.
	m = newMasker(t, Config{})
	require.NotContains(t, maskBody(m, doc, Target{Version: "v1", Resource: "secrets"}).out, "ZGItcHJpbWFyeQ==")
	assert.Contains(t, maskBody(m, doc, Target{Version: "v1", Resource: "configmaps"}).out, "ZGItcHJpbWFyeQ==")
}

// everyOther returns the values of SecretValue calls recorded as value, placeholder, ...
func everyOther(calls []string) []string {
	var vs []string
	for i := 0; i < len(calls); i += 2 {
		vs = append(vs, calls[i])
	}
	return vs
}

// TestItemCacheChangedItem changes an item after it was cached with nothing masked in it: a
// token of the same length in place of a harmless word, a password appended, the data of a
// Secret changed, a byte of its last member. Each is masked, not taken from the cache.
func TestItemCacheChangedItem(t *testing.T) {
	harmless := "ghq_" + strings.Repeat("Ab3dEf6hIj", 3) + "KlMnOp"
	token := "ghp_" + strings.Repeat("Ab3dEf6hIj", 3) + "KlMnOp"
	require.Len(t, token, len(harmless))
	cm := func(note string) string {
		return `{"metadata":{"name":"app","namespace":"prod","uid":"0b5e6f4e-aaaa","resourceVersion":"41"},"data":{"note":` + note + `}}`
	}
	tests := []struct {
		name          string
		before, after string
		target        Target
		secret        string
	}{
		{"token of the same length", cm(`"` + harmless + `"`), cm(`"` + token + `"`), Target{Version: "v1", Resource: "configmaps"}, token},
		{"password appended", cm(`"connect with user=app"`), cm(`"connect with user=app password=Tr0ub4dor-3"`), Target{Version: "v1", Resource: "configmaps"}, "Tr0ub4dor-3"},
		{"secret data changed", secretItem(1, "b2xkLXZhbHVl"), secretItem(1, "bmV3LXZhbHVl"), Target{Version: "v1", Resource: "secrets"}, "bmV3LXZhbHVl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMasker(t, Config{})
			first := maskBody(m, listOf("List", tt.before, tt.before), tt.target)
			require.NoError(t, first.err)
			require.Equal(t, first, maskBody(m, listOf("List", tt.before, tt.before), tt.target), "taken from the cache")
			got := maskBody(m, listOf("List", tt.before, tt.after), tt.target)
			require.NoError(t, got.err)
			assert.NotContains(t, got.out, tt.secret)
			assert.Equal(t, maskBody(uncachedMasker(t, Config{}), listOf("List", tt.before, tt.after), tt.target), got)
		})
	}
}

// TestItemCacheKeepsNoSecret masks Secrets, with and without the hook, and ConfigMaps holding
// credentials, and reads everything the cache holds: no value is in it, in clear or base64.
func TestItemCacheKeepsNoSecret(t *testing.T) {
	m := newMasker(t, Config{})
	values := []string{"canary-secret-value-1", "canary-secret-value-2"}
	var items []string
	for i, v := range values {
		items = append(items, secretItem(i, base64.StdEncoding.EncodeToString([]byte(v))))
	}
	items = append(items, `{"metadata":{"name":"cm"},"data":{"app.properties":"db.password=canary-in-a-config-map\n"}}`,
		// A string rewritten around its placeholders is kept, without what they replaced.
		`{"metadata":{"name":"la","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"ConfigMap\",\"data\":{\"password\":\"canary-in-last-applied\"}}"}},"data":{"password":"canary-in-last-applied"}}`)
	for _, target := range []Target{{Version: "v1", Resource: "secrets"}, {}} {
		got := maskBody(m, listOf("List", items...), target)
		require.NoError(t, got.err)
		requireNoCanary(t, []byte(got.out))
		target.SecretValue = nil
		_, _, err := m.BodyInto(nil, "application/json", "", listOf("List", items...), target)
		require.NoError(t, err)
	}
	require.Positive(t, cacheEntries(m.items))
	rewritten := false
	for _, e := range allEntries(m.items) {
		rewritten = rewritten || bytes.Contains(e.repl, []byte(`\"kind\":\"ConfigMap\"`))
		requireNoCanary(t, e.repl)
		for _, v := range e.vals {
			requireNoCanary(t, []byte(fmt.Sprint(v)))
		}
	}
	assert.True(t, rewritten, "the rewritten last-applied annotation is kept")
}

// TestItemCacheBounded masks lists of distinct items into a small cache: it holds about what it
// may, forgetting the items used least recently first, and goes on masking correctly.
func TestItemCacheBounded(t *testing.T) {
	const limit = 256 << 10
	m := newMasker(t, Config{Limits: Limits{ItemCacheBytes: limit}})
	uncached := uncachedMasker(t, Config{})
	for round := range 20 {
		doc := maskingtest.SecretList(128 << 10)
		doc = bytes.ReplaceAll(doc, []byte(`"name":"`), fmt.Appendf(nil, `"name":"r%d-`, round))
		require.Equal(t, maskBody(uncached, doc, Target{Version: "v1", Resource: "secrets"}), maskBody(m, doc, Target{Version: "v1", Resource: "secrets"}))
		assert.LessOrEqual(t, cacheBytes(m.items), int64(limit), "round %d", round)
	}
	// The last list is still there, the first long gone.
	assert.Positive(t, cacheEntries(m.items))
}

// TestItemCacheConcurrent masks lists that share items from several goroutines at once (run
// with -race), each result the same as without the cache.
func TestItemCacheConcurrent(t *testing.T) {
	m, uncached := newMasker(t, itemCacheConfig), uncachedMasker(t, itemCacheConfig)
	corpus := itemCacheCorpus(t)
	type job struct {
		name string
		doc  []byte
		t    Target
		want masked
	}
	var jobs []job
	for name, doc := range corpus {
		for _, target := range itemCacheTargets[:3] {
			jobs = append(jobs, job{name, doc, target, maskBody(uncached, doc, target)})
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8*len(jobs))
	for g := range 8 {
		wg.Go(func() {
			for k := range jobs {
				j := jobs[(k+g*7)%len(jobs)]
				got := maskBody(m, j.doc, j.t)
				if (got.err == nil) != (j.want.err == nil) || (got.err == nil && !assert.ObjectsAreEqual(j.want, got)) {
					errs <- fmt.Sprintf("%s %+v", j.name, j.t)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("differs from masking without the cache:", e)
	}
}

// TestItemCacheLookupsCostLinearTime selects large entries again and again: objects whose
// first bytes are the same as four large ones masked before, in runs that are not kept (each
// has a last-applied Secret, whose values the hook gets from a nested document), each of whose
// lookups would hash the four large entries. A document hashes at most twice its length so.
func TestItemCacheLookupsCostLinearTime(t *testing.T) {
	m := newMasker(t, Config{})
	name := strings.Repeat("n", 240)
	large := make([]string, 4)
	for k := range large {
		large[k] = fmt.Sprintf(`{"metadata":{"name":"%s-large-%d"},"data":{"k":%q}}`, name, k, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'a' + byte(k)}, 96<<10)))
	}
	target := Target{Version: "v1", Resource: "secrets"}
	require.NoError(t, maskBody(m, listOf("SecretList", large...), target).err)
	require.GreaterOrEqual(t, cacheEntries(m.items), 4)

	inner, err := json.Marshal(`{"apiVersion":"v1","kind":"Secret","stringData":{"p":"hunter2"}}`)
	require.NoError(t, err)
	small := make([]string, 300)
	for k := range small {
		small[k] = fmt.Sprintf(`{"metadata":{"name":"%s-small-%03d","annotations":{"kubectl.kubernetes.io/last-applied-configuration":%s}},"data":{"k":"c2VjcmV0"}}`, name, k, inner)
	}
	doc := listOf("SecretList", small...)
	hashed := m.items.hashed.Load()
	got := maskBody(m, doc, target)
	require.NoError(t, got.err)
	assert.Equal(t, maskBody(uncachedMasker(t, Config{}), doc, target), got)
	assert.LessOrEqual(t, m.items.hashed.Load()-hashed, int64(2*len(doc)), "bytes hashed to look runs up")
}

// TestItemCacheCustomResources reads lists of custom resources, which the API server writes
// with their members sorted, so that every item opens with the same bytes for hundreds of them
// (apiVersion, kind, metadata's annotations or creationTimestamp): read again, every run comes
// from the cache; one object changed, only its run is masked again.
func TestItemCacheCustomResources(t *testing.T) {
	certificate := func(k, rv int, lastApplied bool) string {
		meta := ""
		if lastApplied {
			la, err := json.Marshal(fmt.Sprintf(`{"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{"annotations":{},"name":"web-%d","namespace":"shop"},"spec":{"secretName":"web-%d-tls"}}`, k, k))
			require.NoError(t, err)
			meta = fmt.Sprintf(`"annotations":{"kubectl.kubernetes.io/last-applied-configuration":%s},`, la)
		}
		return fmt.Sprintf(`{"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{%s"creationTimestamp":"2026-11-30T10:00:00Z","generation":1,`+
			`"managedFields":[{"apiVersion":"cert-manager.io/v1","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:secretName":{}}},"manager":"kubectl","operation":"Update"}],`+
			`"name":"web-%d","namespace":"shop","resourceVersion":"%d","uid":"6f2c%04d-8e8b-4f7e-9d1a-3b5c7e9f1a2b"},"spec":{"dnsNames":["web-%d.example.com"],"secretName":"web-%d-tls"},`+
			`"status":{"conditions":[{"lastTransitionTime":"2026-11-30T10:00:05Z","message":"Certificate is up to date and has not expired","reason":"Ready","status":"True","type":"Ready"}]}}`,
			meta, k, 1000+rv, k, k, k)
	}
	for _, lastApplied := range []bool{false, true} {
		t.Run(fmt.Sprintf("last-applied=%v", lastApplied), func(t *testing.T) {
			m := newMasker(t, Config{})
			items := make([]string, 400)
			for k := range items {
				items[k] = certificate(k, k, lastApplied)
			}
			target := Target{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}
			doc := []byte(`{"apiVersion":"cert-manager.io/v1","items":[` + strings.Join(items, ",") + `],"kind":"CertificateList","metadata":{"continue":"","resourceVersion":"2000"}}`)
			first := maskBody(m, doc, target)
			require.NoError(t, first.err)
			before := m.ItemCacheStats()
			require.Greater(t, before.Misses, int64(len(items)/itemsPerRun/4), "runs of a few items")

			assert.Equal(t, first, maskBody(m, doc, target))
			again := m.ItemCacheStats()
			assert.Equal(t, before.Misses, again.Misses, "read again, no run is masked")
			assert.Equal(t, again.Hits-before.Hits, before.Misses)

			items[200] = certificate(200, 5000, lastApplied)
			changed := []byte(`{"apiVersion":"cert-manager.io/v1","items":[` + strings.Join(items, ",") + `],"kind":"CertificateList","metadata":{"continue":"","resourceVersion":"2001"}}`)
			assert.Equal(t, maskBody(uncachedMasker(t, Config{}), changed, target), maskBody(m, changed, target))
			after := m.ItemCacheStats()
			assert.LessOrEqual(t, after.Misses-again.Misses, int64(2), "only the changed object's run is masked again")
		})
	}
}

// TestItemCacheKubectlAppliedSecrets reads Secrets that kubectl apply wrote, whose
// last-applied annotation holds their values again, with the SecretValue hook: read again,
// every run comes from the cache, and the hook gets the values of the data and of the
// annotation's document, read from the response, as masking them gives them.
func TestItemCacheKubectlAppliedSecrets(t *testing.T) {
	items := make([]string, 60)
	for k := range items {
		value := fmt.Sprintf(`pa"ss\word-%d`, k) // escaped in the data's JSON, twice in the annotation's
		applied, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret",
			"metadata":   map[string]any{"name": fmt.Sprintf("app-%d", k), "namespace": "shop"},
			"data":       map[string]string{"password": base64.StdEncoding.EncodeToString([]byte(value))},
			"stringData": map[string]string{"note": value + "\n"}})
		require.NoError(t, err)
		quoted, err := json.Marshal(string(applied) + "\n")
		require.NoError(t, err)
		items[k] = fmt.Sprintf(`{"metadata":{"name":"app-%d","namespace":"shop","resourceVersion":"%d","annotations":{"kubectl.kubernetes.io/last-applied-configuration":%s}},"data":{"password":%q},"type":"Opaque"}`,
			k, 100+k, quoted, base64.StdEncoding.EncodeToString([]byte(value)))
	}
	doc := listOf("SecretList", items...)
	target := Target{Version: "v1", Resource: "secrets"}
	want := maskBody(uncachedMasker(t, Config{}), doc, target)
	require.NoError(t, want.err)
	require.Len(t, want.values, 2*3*len(items), "three values a Secret")

	m := newMasker(t, Config{})
	require.Equal(t, want, maskBody(m, doc, target))
	first := m.ItemCacheStats()
	require.Equal(t, want, maskBody(m, doc, target))
	again := m.ItemCacheStats()
	assert.Equal(t, first.Misses, again.Misses, "read again, no run is masked")
	assert.Equal(t, first.Misses, again.Hits-first.Hits)
	requireNoCanary(t, []byte(want.out), `pa\"ss`)
}

// TestItemCacheScopes fills the table of scopes: with a list named by a name too long to keep
// (not cached), and with more request types than the table holds; the cache goes on working
// for the types that come after, and holds no scope longer than maxScopeBytes.
func TestItemCacheScopes(t *testing.T) {
	m := newMasker(t, Config{})
	uncached := uncachedMasker(t, Config{})
	long := listOf("List", `{"metadata":{"name":"a"},"data":{"k":"v"}}`, `{"metadata":{"name":"b"},"data":{"k":"v"}}`)
	long = bytes.Replace(long, []byte(`"metadata":{"resourceVersion":"7"}`), fmt.Appendf(nil, `"metadata":{"name":%q}`, strings.Repeat("n", 4<<10)), 1)
	// Many lists in one document, each of which is the top-level list in turn.
	many := []byte(`{"kind":"List"` + strings.Repeat(`,"items":[{"metadata":{"name":"x"},"data":{"password":"cGFzcw=="}}]`, 2000) + `}`)
	// And so in a list named by a huge name, which appendScopeBytes does not copy for each.
	manyLong := []byte(`{"kind":"List","metadata":{"name":"` + strings.Repeat("n", 1<<20) + `"}` + strings.Repeat(`,"items":[{"data":{"password":"cGFzcw=="}}]`, 2000) + `}`)
	for _, doc := range [][]byte{long, many, manyLong} {
		for range 2 {
			require.Equal(t, maskBody(uncached, doc, Target{}), maskBody(m, doc, Target{}))
		}
	}
	for g := range maxItemScopes + 10 {
		target := Target{Group: fmt.Sprintf("g%d.example.com", g), Version: "v1", Resource: "widgets"}
		doc := listOf("WidgetList", `{"metadata":{"name":"w"},"spec":{"password":"hunter2"}}`)
		require.NotContains(t, maskBody(m, doc, target).out, "hunter2")
	}
	m.items.mu.Lock()
	for desc := range m.items.scopes {
		assert.LessOrEqual(t, len(desc), maxScopeBytes)
	}
	assert.LessOrEqual(t, len(m.items.scopes), maxItemScopes)
	m.items.mu.Unlock()
	secrets := maskingtest.SecretList(64 << 10)
	target := Target{Version: "v1", Resource: "secrets"}
	require.Equal(t, maskBody(uncached, secrets, target), maskBody(m, secrets, target))
	before := m.ItemCacheStats()
	require.Equal(t, maskBody(uncached, secrets, target), maskBody(m, secrets, target))
	assert.Greater(t, m.ItemCacheStats().Hits, before.Hits, "a new request type is cached after the table was full")
}

// TestAppendScopeBytes bounds the description of a scope: a part that would make it longer
// than maxScopeBytes is not copied, so that a huge name costs no more than a short one each
// time a document's "items" key repeats.
func TestAppendScopeBytes(t *testing.T) {
	long := make([]byte, maxScopeBytes+1)
	for _, tc := range []struct {
		name string
		b, s []byte
		want []byte
	}{
		{name: "nil", b: []byte("ab"), s: nil, want: []byte("ab\x00")},
		{name: "empty", b: []byte("ab"), s: []byte{}, want: []byte("ab\x01\x00")},
		{name: "short", b: []byte("ab"), s: []byte("xyz"), want: []byte("ab\x01\x03xyz")},
		{name: "huge", b: []byte("ab"), s: bytes.Repeat([]byte("n"), 64<<20), want: append([]byte("ab"), make([]byte, maxScopeBytes-1)...)},
		{name: "already too long", b: long, s: []byte("x"), want: long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, appendScopeBytes(bytes.Clone(tc.b), tc.s))
		})
	}
}

// TestItemCacheOff turns the cache off.
func TestItemCacheOff(t *testing.T) {
	assert.Nil(t, newMasker(t, Config{Limits: Limits{ItemCacheBytes: -1}}).items)
	m := newMasker(t, Config{})
	require.NotNil(t, m.items)
	assert.Equal(t, int64(DefaultItemCacheBytes/itemShards/2), m.items.shardMax)
}

// FuzzItemCache masks lists of two items, repeated, for three targets, with a cache and without:
// the results must be the same, the first time and again.
func FuzzItemCache(f *testing.F) {
	f.Add([]byte(secretItem(1, "c2VjcmV0")), []byte(`{"metadata":{"name":"x"},"data":{"a":"YQ=="}}`), uint8(3))
	f.Add([]byte(`{"metadata":{"name":"a"},"kind":"ConfigMap","data":{"password":"x"}}`), []byte(`{"metadata":{"name":"a"},"kind":"Secret","data":{"password":"x"}}`), uint8(2))
	f.Add([]byte(`{"metadata":{"name":"a","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"stringData\":{\"p\":\"x\"}}"}}}`), []byte(`1`), uint8(4))
	cached, uncached := newMasker(f, itemCacheConfig), uncachedMasker(f, itemCacheConfig)
	f.Fuzz(func(t *testing.T, a, b []byte, n uint8) {
		items := fuzzItems(a, b, int(n%6)+2)
		for _, kind := range []string{"SecretList", "List"} {
			doc := listOf(kind, items...)
			for _, target := range itemCacheTargets[:3] {
				want := maskBody(uncached, doc, target)
				for range 2 {
					got := maskBody(cached, doc, target)
					require.Equal(t, want.err == nil, got.err == nil, "uncached: %v, cached: %v", want.err, got.err)
					if want.err == nil {
						require.Equal(t, want, got)
					}
				}
			}
		}
	})
}

// allEntries returns every entry in c.
func allEntries(c *itemCache) []*itemEntry {
	var es []*itemEntry
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, gen := range []map[itemKey]*itemEntry{s.cur, s.old} {
			for _, e := range gen {
				for ; e != nil; e = e.next {
					es = append(es, e)
				}
			}
		}
		s.mu.Unlock()
	}
	return es
}

func cacheEntries(c *itemCache) int { return len(allEntries(c)) }

// cacheBytes returns what c holds, by its accounting.
func cacheBytes(c *itemCache) int64 {
	var n int64
	for _, e := range allEntries(c) {
		n += e.size()
	}
	return n
}
