package identity

import (
	"testing"

	"github.com/stretchr/testify/assert"
	authenticationv1 "k8s.io/api/authentication/v1"
)

func TestFromExtra(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]authenticationv1.ExtraValue
		want  Extras
		via   bool
	}{
		{"direct call", nil, Extras{}, false},
		{"through the gateway", map[string]authenticationv1.ExtraValue{
			ExtraSessionID: {"s1"}, ExtraIssuer: {"https://idp"}, ExtraSubject: {"42"},
			ExtraClient: {"kubectl"}, ExtraApprovalID: {"a1"}, ExtraReason: {"ticket 7"}, ExtraOriginalUser: {"alice"},
		}, Extras{SessionID: "s1", Issuer: "https://idp", Subject: "42", Client: "kubectl", ApprovalID: "a1", Reason: "ticket 7", OriginalUser: "alice"}, true},
		{"empty value", map[string]authenticationv1.ExtraValue{ExtraSessionID: {}}, Extras{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FromExtra(tc.extra)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.via, got.ViaGateway())
		})
	}
	// Plain maps, as in audit events decoded generically, work too.
	assert.Equal(t, "s2", FromExtra(map[string][]string{ExtraSessionID: {"s2"}}).SessionID)
}
