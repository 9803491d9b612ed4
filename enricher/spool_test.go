package enricher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spoolBatch writes and commits one batch of messages.
func spoolBatch(t *testing.T, s *spool, id string, msgs ...string) bool {
	t.Helper()
	w, err := s.create()
	require.NoError(t, err)
	for _, m := range msgs {
		require.NoError(t, w.append([]byte(m)))
	}
	dup, err := w.commit(id)
	require.NoError(t, err)
	return dup
}

// readBatch reads a queued batch whole.
func readBatch(t *testing.T, s *spool, e spoolEntry) ([]string, error) {
	t.Helper()
	r, err := s.open(e)
	if err != nil {
		return nil, err
	}
	defer r.close()
	var out []string
	for {
		m, err := r.next(e.id)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(m))
	}
}

func TestSpoolKeepsBatchesInOrderAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	s, rep, err := openSpool(dir, 1<<20)
	require.NoError(t, err)
	assert.Equal(t, spoolOpenReport{}, rep)
	assert.False(t, spoolBatch(t, s, "webhook-a", "a1", "a2"))
	assert.False(t, spoolBatch(t, s, "file-1-0-10", "b1"))
	assert.True(t, spoolBatch(t, s, "webhook-a", "a1", "a2"), "a batch queued already is not queued again")
	assert.Equal(t, 2, s.stats().Batches)

	_, _, err = openSpool(dir, 1<<20)
	require.Error(t, err, "one process per spool")
	s.close()

	s, rep, err = openSpool(dir, 1<<20)
	require.NoError(t, err)
	defer s.close()
	assert.Equal(t, 2, rep.Batches)
	assert.Positive(t, rep.Bytes)
	e, ok, _ := s.head()
	require.True(t, ok)
	assert.Equal(t, "webhook-a", e.id)
	msgs, err := readBatch(t, s, e)
	require.NoError(t, err)
	assert.Equal(t, []string{"a1", "a2"}, msgs)
	require.NoError(t, s.remove(e))

	assert.False(t, spoolBatch(t, s, "webhook-c", "c1"), "sequence numbers go on after a restart")
	var order []string
	for {
		e, ok, _ := s.head()
		if !ok {
			break
		}
		order = append(order, e.id)
		require.NoError(t, s.remove(e))
	}
	assert.Equal(t, []string{"file-1-0-10", "webhook-c"}, order)
	assert.Equal(t, int64(0), s.stats().Bytes, "removed batches free their space")
}

func TestSpoolIsBounded(t *testing.T) {
	s, _, err := openSpool(t.TempDir(), 4<<10)
	require.NoError(t, err)
	defer s.close()
	big := strings.Repeat("x", 3<<10)
	spoolBatch(t, s, "webhook-1", big)

	w, err := s.create()
	require.NoError(t, err)
	err = w.append([]byte(big))
	require.ErrorIs(t, err, ErrSpoolFull, "a batch that does not fit is refused")
	w.abort()
	assert.Equal(t, 1, s.stats().Batches)
	used := s.stats().Bytes

	e, _, _ := s.head()
	require.NoError(t, s.remove(e))
	assert.Less(t, s.stats().Bytes, used)
	spoolBatch(t, s, "webhook-2", big)
	entries, err := os.ReadDir(s.dir)
	require.NoError(t, err)
	for _, de := range entries {
		assert.False(t, strings.HasSuffix(de.Name(), spoolPartSuffix), "aborted batches leave no file: %s", de.Name())
	}
}

// TestSpoolDetectsTornAndDamagedFiles plays what a SIGKILL or a damaged disk leaves behind.
func TestSpoolDetectsTornAndDamagedFiles(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"cut in a record", func(t *testing.T, path string) { cut(t, path, 20) }},
		{"commit record missing", func(t *testing.T, path string) { cut(t, path, recHeaderSize+4+len("webhook-x")) }},
		{"byte flipped", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[len(spoolMagic)+recHeaderSize+3] ^= 0x20
			require.NoError(t, os.WriteFile(path, b, 0o600))
		}},
		{"garbage appended", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, _ = f.WriteString("junk")
			require.NoError(t, f.Close())
		}},
		{"no header", func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte("GH"), 0o600)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _, err := openSpool(dir, 1<<20)
			require.NoError(t, err)
			spoolBatch(t, s, "webhook-x", "first message", strings.Repeat("second ", 100))
			e, _, _ := s.head()
			tc.damage(t, filepath.Join(dir, e.name()))
			_, err = readBatch(t, s, e)
			require.ErrorIs(t, err, errSpoolCorrupt)
			require.NoError(t, s.quarantine(e))
			_, ok, _ := s.head()
			assert.False(t, ok)
			_, err = os.Stat(filepath.Join(dir, e.name()+spoolBadSuffix))
			require.NoError(t, err, "a damaged batch is kept aside for inspection")
			s.close()
		})
	}

	t.Run("incomplete batch of a killed process", func(t *testing.T) {
		dir := t.TempDir()
		s, _, err := openSpool(dir, 1<<20)
		require.NoError(t, err)
		spoolBatch(t, s, "webhook-done", "m")
		w, err := s.create()
		require.NoError(t, err)
		require.NoError(t, w.append([]byte("half of a batch")))
		require.NoError(t, w.w.Flush())
		s.close() // the process dies: no commit, no abort

		s, rep, err := openSpool(dir, 1<<20)
		require.NoError(t, err)
		defer s.close()
		assert.Equal(t, spoolOpenReport{Batches: 1, Bytes: rep.Bytes, Discarded: 1}, rep)
		_, err = os.Stat(w.path)
		require.ErrorIs(t, err, os.ErrNotExist)
		e, _, _ := s.head()
		msgs, err := readBatch(t, s, e)
		require.NoError(t, err)
		assert.Equal(t, []string{"m"}, msgs)
	})
}

func cut(t *testing.T, path string, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-n], 0o600))
}

func TestSpoolRefusesBadIDs(t *testing.T) {
	s, _, err := openSpool(t.TempDir(), 1<<20)
	require.NoError(t, err)
	defer s.close()
	for _, id := range []string{"", "../etc/passwd", "Webhook-A", "a/b", strings.Repeat("a", 201)} {
		w, err := s.create()
		require.NoError(t, err)
		_, err = w.commit(id)
		require.Error(t, err, "%q", id)
	}
	assert.Zero(t, s.stats().Bytes)
}

// TestSpoolReusesBuffers checks that writers and readers on kept buffers write and read each
// batch exactly: nothing of an earlier batch, written whole, abandoned halfway or read, leaks
// into a later one.
func TestSpoolReusesBuffers(t *testing.T) {
	s, _, err := openSpool(t.TempDir(), 64<<20)
	require.NoError(t, err)
	defer s.close()
	big := strings.Repeat("x", 300<<10) // beyond one buffer
	batches := [][]string{{big, "a2"}, {"b1"}, {"c1", big[:5000], "c3"}, {"d1"}}
	for i, msgs := range batches {
		if i == 2 {
			// A batch abandoned with data still in the write buffer.
			w, err := s.create()
			require.NoError(t, err)
			require.NoError(t, w.append([]byte("abandoned")))
			w.abort()
		}
		spoolBatch(t, s, fmt.Sprintf("webhook-%d", i), msgs...)
	}
	for _, msgs := range batches {
		e, ok, _ := s.head()
		require.True(t, ok)
		got, err := readBatch(t, s, e)
		require.NoError(t, err)
		assert.Equal(t, msgs, got, e.id)
		again, err := readBatch(t, s, e)
		require.NoError(t, err)
		assert.Equal(t, msgs, again, "%s read again", e.id)
		require.NoError(t, s.remove(e))
	}
}
