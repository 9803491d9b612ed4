package recording

import (
	"bytes"
	"testing"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
)

// BenchmarkBatchSecretList hands the values of the proxy's 1 MB SecretList
// (maskingtest.SecretList) to a session's set as the proxy does for a response masked whole:
// each value the masker reports goes into a Batch, and the batch into an empty Values set with
// AddBatch. The baseline is masking the list with a hook that keeps nothing.
func BenchmarkBatchSecretList(b *testing.B) {
	m, err := masking.New(masking.Config{Key: masking.Key("gatehouse-benchmark-key-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	list := maskingtest.SecretList(1 << 20)
	mask := func(b *testing.B, hook func(v, ph []byte), after func()) {
		b.SetBytes(int64(len(list)))
		b.ReportAllocs()
		buf := make([]byte, 0, len(list)+len(list)/8)
		t := masking.Target{Version: "v1", Resource: "secrets", Namespace: "default", SecretValue: hook}
		for b.Loop() {
			if _, _, err := m.BodyInto(buf, "application/json", "", list, t); err != nil {
				b.Fatal(err)
			}
			after()
		}
	}
	b.Run("baseline=mask", func(b *testing.B) {
		mask(b, func(v, ph []byte) {}, func() {})
	})
	b.Run("mask+batch", func(b *testing.B) {
		var batch Batch
		mask(b, func(v, ph []byte) {
			if TrimmedAtLeast(v, MinValueBytes) {
				batch.Add(v, ph)
			}
		}, func() {
			var s Values
			s.AddBatch(&batch)
			if s.Len() == 0 {
				b.Fatal("no values kept")
			}
			batch.Reset()
		})
	})
}

// BenchmarkAddBatchSecretList is BenchmarkBatchSecretList without the masking: the values the
// masker reports for the 1 MB SecretList go into a Batch and the batch into a set, which is empty
// or holds what the same list left in it (a session that reads the list again).
func BenchmarkAddBatchSecretList(b *testing.B) {
	m, err := masking.New(masking.Config{Key: masking.Key("gatehouse-benchmark-key-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	list := maskingtest.SecretList(1 << 20)
	var values, placeholders [][]byte
	t := masking.Target{Version: "v1", Resource: "secrets", SecretValue: func(v, ph []byte) {
		values, placeholders = append(values, bytes.Clone(v)), append(placeholders, bytes.Clone(ph))
	}}
	if _, _, err := m.JSON(nil, list, t); err != nil {
		b.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		name := "set=empty"
		if full {
			name = "set=full"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var batch Batch
			var set Values
			for b.Loop() {
				for k, v := range values {
					if TrimmedAtLeast(v, MinValueBytes) {
						batch.Add(v, placeholders[k])
					}
				}
				if !full {
					set = Values{}
				}
				set.AddBatch(&batch)
				batch.Reset()
			}
			if set.Len() == 0 {
				b.Fatal("no values kept")
			}
		})
	}
}
