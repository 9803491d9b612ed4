package identity

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsReserved(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{ExtraSessionID, true},
		{ExtraApprovalID, true},
		{"gatehouse.dev/anything-new", true},
		{"GATEHOUSE.DEV/Session-Id", true},
		{"team.gatehouse.dev/x", true},
		{"gatehouse.dev", false},
		{"example.com/gatehouse.dev", false},
		{"notgatehouse.dev/x", false},
		{"gatehouse.dev.example.com/x", false},
		{"example.com/team", false},
		{"", false},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, IsReserved(tc.key), tc.key)
	}
}
