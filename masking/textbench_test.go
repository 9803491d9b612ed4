package masking

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// BenchmarkTextConfigMapList masks a 1 MB ConfigMapList, whose cost is the text masking of
// the configuration files in its values.
func BenchmarkTextConfigMapList(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	list := maskingtest.ConfigMapList(1 << 20)
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	dst := make([]byte, 0, len(list)+len(list)/4)
	for b.Loop() {
		out, _, err := m.JSON(dst[:0], list, Target{Resource: "configmaps"})
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
}

// BenchmarkTextKeywordValues masks a 1 MB ConfigMapList whose values hold keywords the
// prefilter finds (and nothing else it stops at), without escapes: the strings the raw
// prefilter reads before the detectors read them again.
func BenchmarkTextKeywordValues(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	var list bytes.Buffer
	list.WriteString(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[`)
	for i := 0; list.Len() < 1<<20; i++ {
		if i > 0 {
			list.WriteByte(',')
		}
		fmt.Fprintf(&list, `{"metadata":{"name":"app-%05d","namespace":"default"},"data":{"task":"disk cache path for the api key rotation task %d","mode":"use the secret store, token path /var/run/tokens"}}`, i, i)
	}
	list.WriteString("]}")
	b.SetBytes(int64(list.Len()))
	b.ReportAllocs()
	dst := make([]byte, 0, list.Len()+list.Len()/4)
	for b.Loop() {
		out, _, err := m.JSON(dst[:0], list.Bytes(), Target{Resource: "configmaps"})
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
}
