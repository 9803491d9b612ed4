package enricher

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingColumn is a batch column that records what is appended to it.
type recordingColumn struct{ rows []any }

func (r *recordingColumn) Append(v any) error {
	for _, x := range v.([]string) {
		r.rows = append(r.rows, x)
	}
	return nil
}

func (r *recordingColumn) AppendRow(v any) error {
	r.rows = append(r.rows, v)
	return nil
}

// TestAppendBoxedKeepsValues appends a LowCardinality column through its cache of boxed values:
// more distinct values than the cache holds, values too long to be kept, and repeats.
func TestAppendBoxedKeepsValues(t *testing.T) {
	var c columns
	var s []string
	addColumn(&c, "v", &s)
	for i := range 3 * maxBoxes {
		s = append(s, fmt.Sprintf("value-%d", i%(2*maxBoxes)), strings.Repeat("x", maxBoxedLen+i%3), "create")
	}
	for _, r := range [][2]int{{0, len(s)}, {5, 17}, {len(s) - 1, len(s)}} {
		var col recordingColumn
		require.NoError(t, c.appendBoxed(&col, 0, r[0], r[1]))
		want := make([]any, 0, r[1]-r[0])
		for _, v := range s[r[0]:r[1]] {
			want = append(want, v)
		}
		assert.Equal(t, want, col.rows)
		assert.LessOrEqual(t, len(c.boxes[0]), maxBoxes)
	}
}
