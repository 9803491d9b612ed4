package masking

import (
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
