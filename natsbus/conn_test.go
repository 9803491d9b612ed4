package natsbus

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@nats:4222", "nats://REDACTED@nats:4222"},
		{"tls://token@a:4222,nats://b:4222", "tls://REDACTED@a:4222,nats://b:4222"},
		{"u:p@host:4222", "REDACTED@host:4222"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, redact(tc.in))
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"embedded", Options{}, true},
		{"external", Options{URL: "nats://n:4222", CredsFile: "c"}, true},
		{"cert without key", Options{URL: "nats://n:4222", CertFile: "c"}, false},
		{"credentials without a URL", Options{CredsFile: "c"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, tc.o.Validate() == nil)
		})
	}
}
