package authn

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIssuerOf(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	iss, err := issuerOf("x." + enc([]byte(`{"iss":"https://idp"}`)) + ".y")
	require.NoError(t, err)
	assert.Equal(t, "https://idp", iss)
	for _, bad := range []string{"", "a.b", "a.!!.c", "a." + enc([]byte("not json")) + ".c"} {
		_, err := issuerOf(bad)
		assert.Error(t, err, bad)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&AuthError{Reason: ReasonExpired, Err: errors.New("token is expired")}, ReasonExpired},
		{ErrIssuerUnavailable, ReasonUnavailable},
		{errors.New("anything else"), ReasonSignature},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, Reason(tc.err), tc.err.Error())
	}
}
