package masking

import (
	"encoding/json"
	"testing"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// BenchmarkItemCache masks 1 MB lists read whole (Body, as the proxy reads them) again and
// again: with the item cache, whose items are all found there after the first read
// (cache=warm), with an empty cache each time (cache=cold: every item is masked and stored),
// and without it (cache=off); json.Valid over the same bytes is the baseline. The Secrets of
// secrets/hook and applied-secrets/hook pass their values to a SecretValue hook, as the proxy's
// sessions take them.
func BenchmarkItemCache(b *testing.B) {
	var values int
	hook := func(v, p []byte) { values += len(v) + len(p) }
	for _, l := range []struct {
		name string
		list []byte
		t    Target
	}{
		{"configmaps", maskingtest.ConfigMapList(1 << 20), Target{Resource: "configmaps"}},
		{"pods", maskingtest.PodList(1 << 20), Target{Resource: "pods"}},
		{"secrets", maskingtest.SecretList(1 << 20), Target{Resource: "secrets"}},
		{"secrets/hook", maskingtest.SecretList(1 << 20), Target{Resource: "secrets", SecretValue: hook}},
		// Secrets written by kubectl apply: their last-applied annotation holds their values.
		{"applied-secrets/hook", genSecretList(400), Target{Resource: "secrets", SecretValue: hook}},
	} {
		for _, c := range []struct {
			name  string
			bytes int64
			cold  bool
		}{{"cache=warm", 0, false}, {"cache=cold", 0, true}, {"cache=off", -1, false}} {
			m, err := New(Config{Key: benchKey, Limits: Limits{ItemCacheBytes: c.bytes}})
			if err != nil {
				b.Fatal(err)
			}
			b.Run(l.name+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(l.list)))
				b.ReportAllocs()
				buf := make([]byte, 0, len(l.list)+len(l.list)/4)
				for b.Loop() {
					if c.cold {
						m.items = newItemCache(DefaultItemCacheBytes)
					}
					if _, _, err := m.BodyInto(buf, "application/json", "", l.list, l.t); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(l.name+"/baseline=json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(l.list)))
			for b.Loop() {
				if !json.Valid(l.list) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
