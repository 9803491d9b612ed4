package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher"
)

func TestParseMemoryLimit(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"auto", -1},
		{"", -1},
		{"off", 0},
		{"900Mi", 900 << 20},
		{"1Gi", 1 << 30},
		{"1000000", 1000000},
	}
	for _, tc := range tests {
		got, err := parseMemoryLimit(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
}

func TestEnvelopeKeyFollowsTheMaskingKey(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(keyFile, []byte("a-masking-key-of-32-bytes-length\n"), 0o600))
	o := &enricherOptions{masking: maskingOptions{keyFile: keyFile}}
	key, err := o.envelopeKey()
	require.NoError(t, err)
	assert.Equal(t, enricher.EnvelopeKey([]byte("a-masking-key-of-32-bytes-length")), key, "every replica with the masking key derives the same key")
	assert.NotContains(t, string(key), "a-masking-key", "and it is not the masking key")

	none, err := (&enricherOptions{}).envelopeKey()
	require.NoError(t, err)
	assert.Nil(t, none, "without a masking key (dev), the enricher picks a random key")
}
