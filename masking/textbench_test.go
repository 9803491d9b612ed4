package masking

import (
	"bytes"
	"fmt"
	"testing"
)

// genConfigMapList returns a ConfigMapList of about size bytes whose data hold configuration
// files, some with credentials in them (the proxy's 1 MB list benchmark holds the same).
func genConfigMapList(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"250000"},"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"metadata":{"name":"app-%05d-config","namespace":"default","uid":"%08x-6b1e-4c8e-9a41-2f5e8c7d9b10","resourceVersion":"%d","creationTimestamp":"2026-03-14T09:26:53Z","labels":{"app.kubernetes.io/name":"app-%05d"}},"data":{"application.yaml":"server:\n  port: 8080\n  threads: %d\nlogging:\n  level: info\nfeatures:\n  search: true\n  export: false\n","database.properties":"url=jdbc:postgresql://db-%d.internal:5432/app\nuser=app\npassword=pw-%08x-Qx7f\npool.size=20\n","mode":"production"}}`,
			i, i, 100000+i, i, i%64, i%8, i*7919)
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// BenchmarkTextConfigMapList masks a 1 MB ConfigMapList, whose cost is the text masking of
// the configuration files in its values.
func BenchmarkTextConfigMapList(b *testing.B) {
	m, err := New(Config{Key: benchKey})
	if err != nil {
		b.Fatal(err)
	}
	list := genConfigMapList(1 << 20)
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
