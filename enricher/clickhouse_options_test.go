package enricher

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/enricher/schema"
)

// TestClickHouseCluster: with a cluster, every insert waits until the Distributed tables have
// forwarded its rows (a batch is acknowledged only once they are in a replicated table), and a
// cluster name that is not one is refused before anything runs.
func TestClickHouseCluster(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cluster  string
		settings map[string]any
		wantErr  error
	}{
		{name: "one server", settings: nil},
		{name: "a cluster", cluster: "gatehouse", settings: map[string]any{"distributed_foreground_insert": 1}},
		{name: "not a cluster name", cluster: "x ON CLUSTER y", wantErr: schema.ErrInvalidOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ClickHouseOptions{Cluster: tc.cluster, getenv: func(string) string { return "" }}
			opts, err := o.Options()
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.settings == nil {
				assert.Empty(t, opts.Settings)
				return
			}
			for k, v := range tc.settings {
				assert.Equal(t, v, opts.Settings[k])
			}
		})
	}
}
