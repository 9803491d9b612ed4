package proxy

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking"
	"github.com/gatehouse-dev/gatehouse/recording"
)

// TestBatchHookKeepsWhatAddingKeeps hands the values of two large responses (more values than
// a session keeps, more bytes than a batch collects before it goes to the set, values of several
// lines, values too short to keep) to the batch hook and to a set value by value: the session's
// set ends up the same, and a later exec output is masked the same.
func TestBatchHookKeepsWhatAddingKeeps(t *testing.T) {
	s := newSessionValues()
	st := &requestState{session: "s1", target: masking.Target{Version: "v1", Resource: "secrets"}}
	want := &recording.Values{}
	var all [][]byte
	response := func(first, n int) {
		hook, flush := s.batchHook(st)
		require.NotNil(t, hook)
		for i := first; i < first+n; i++ {
			v := fmt.Appendf(nil, "value-%05d-", i)
			switch i % 7 {
			case 0:
				v = append(v, bytes.Repeat([]byte("x"), 5000)...) // past maxBatchBytes in all
			case 1:
				v = fmt.Appendf(v, "\nline-two-%05d\r\n", i)
			case 2:
				v = []byte("short")
			}
			ph := fmt.Appendf(nil, "gatehouse:masked:%012x", i)
			if keepable(v) {
				want.Add(v, ph)
			}
			hook(v, ph)
			all = append(all, bytes.Clone(v))
			clear(v) // the masker reuses its buffers
		}
		flush()
	}
	response(0, 6000)
	response(5900, 300) // values the set holds, and values it forgot
	// Values collected before a batch goes to the set are kept when what follows them in the
	// response adds little: one value of many equal lines fills the batch.
	hook, flush := s.batchHook(st)
	for _, v := range [][]byte{[]byte("early-value-1"), []byte("early-value-2"),
		bytes.Repeat([]byte("same-line\n"), maxBatchBytes/10+1), []byte("late-value-3")} {
		want.Add(v, []byte("P"))
		hook(v, []byte("P"))
		all = append(all, v)
	}
	flush()
	got := s.of("s1")
	assert.Equal(t, want.Len(), got.Len())
	for i, v := range all {
		require.Equal(t, want.Contains(v), got.Contains(v), "value %d", i)
	}
	text := bytes.Join(all, []byte(" "))
	wantOut, wantN := want.Replace(text)
	gotOut, gotN := got.Replace(text)
	assert.Positive(t, gotN)
	assert.Equal(t, wantN, gotN)
	assert.Equal(t, string(wantOut), string(gotOut))
}

func TestBatchHookOnlyForSecrets(t *testing.T) {
	s := newSessionValues()
	for _, st := range []*requestState{
		{session: "s1", target: masking.Target{Version: "v1", Resource: "configmaps"}},
		{session: "s1", target: masking.Target{Version: "v1", Resource: "secrets", Subresource: "status"}},
		{target: masking.Target{Version: "v1", Resource: "secrets"}},
	} {
		hook, flush := s.batchHook(st)
		assert.Nil(t, hook)
		assert.Nil(t, flush)
	}
	hook, flush := s.batchHook(&requestState{session: "s2", target: masking.Target{Version: "v1", Resource: "secrets"}})
	flush() // nothing collected: no set is created
	assert.Empty(t, s.m)
	hook([]byte("a-value-long-enough"), []byte("P"))
	flush()
	assert.True(t, s.of("s2").Contains([]byte("a-value-long-enough")))
}
