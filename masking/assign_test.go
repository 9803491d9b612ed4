package masking

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestQuotedValueEndingInColon: a value whose first word ends in a colon is read as a nested key
// ("token:\n  path: x") unless it is quoted, where it is a value whatever it ends with.
func TestQuotedValueEndingInColon(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		text   string
		masked bool
	}{
		{`password: "hunter2xyz:"`, true},
		{`password: 'Hunter2xyz:'`, true},
		{`log "password":"hunter2xyz:" at`, true},
		{`{\"password\":\"hunter2xyz:\"}`, true},
		{`DB_PASSWORD="k8s:Hunter2xyz:"`, true},
		{`{\u0022password\u0022:\u0022hunter2xyz:\u0022}`, true},
		{"password:\n  path: x", false},
		{"token: expirationSeconds: 3600", false},
		{"serviceAccountToken:\n  expirationSeconds: 3607\n  path: token\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			out, st := m.Text(nil, []byte(tc.text))
			if tc.masked {
				assert.Contains(t, string(out), PlaceholderPrefix)
				assert.NotContains(t, strings.ToLower(string(out)), "hunter2xyz")
			} else {
				assert.Equal(t, tc.text, string(out))
				assert.Zero(t, st.Fields)
			}
		})
	}
}
