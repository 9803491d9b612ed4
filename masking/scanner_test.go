package masking

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLexerErrors checks that the lexer's errors reach callers as ErrMalformed, with the
// messages the engine always gave: what and where, never content.
func TestLexerErrors(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name string
		src  string
		msg  string
	}{
		{"bad escape", `{"a":"x\q"}`, "masking: malformed content: invalid escape at offset 7"},
		{"invalid utf-8", "{\"a\":\"x\xff\"}", "masking: malformed content: invalid UTF-8 in string at offset 7"},
		{"control character", "{\"a\":\"x\x01\"}", "masking: malformed content: control character in string at offset 7"},
		{"truncated", `{"a":"s3cr3t`, "masking: malformed content: unexpected end of input"},
		{"bad number", `{"a":01}`, ""},
		{"too deep", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := m.JSON(nil, []byte(tc.src), Target{})
			require.ErrorIs(t, err, ErrMalformed)
			if tc.msg != "" {
				assert.Equal(t, tc.msg, err.Error())
			}
			assert.NotContains(t, err.Error(), "s3cr3t")
		})
	}
}

// TestWatchStreamSplitErrors checks that a watch stream fails closed at a bracket that does not
// match or a string that breaks, after the events before it, with ErrMalformed.
func TestWatchStreamSplitErrors(t *testing.T) {
	m := newMasker(t, Config{})
	for _, bad := range []string{`{"type":"ADDED","object":{"kind":"Pod"]}`, "{\"type\":\"ADDED\x01\"}", `{"type":"\x"}`} {
		good := `{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"p"}}}`
		r := m.WatchStream(strings.NewReader(good+"\n"+bad+"\n"+good), Target{})
		out, err := io.ReadAll(r)
		require.ErrorIs(t, err, ErrMalformed, "%q", bad)
		assert.Equal(t, 1, strings.Count(string(out), "\n"), "only the event before it goes out: %q", out)
	}
}
