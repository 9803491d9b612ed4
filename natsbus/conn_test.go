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
	deployed := Options{Role: RoleProxy, URL: "tls://nats:4222", NKeyFile: "proxy.nkey", CAFile: "ca.crt"}
	tests := []struct {
		name string
		edit func(*Options)
		want string // "" when valid
	}{
		{"as deployed", func(*Options) {}, ""},
		{"tls:// URLs with the system's roots", func(o *Options) { o.CAFile = "" }, ""},
		{"a creds file instead of an NKey", func(o *Options) { o.NKeyFile, o.CredsFile = "", "proxy.creds" }, ""},
		{"mutual TLS", func(o *Options) { o.CertFile, o.KeyFile = "c.crt", "c.key" }, ""},
		{"no URL is not the embedded server", func(o *Options) { o.URL = "" }, "--nats-url is required"},
		{"no credentials", func(o *Options) { o.NKeyFile = "" }, "credentials are required"},
		{"both credentials", func(o *Options) { o.CredsFile = "c" }, "alternatives"},
		{"no TLS", func(o *Options) { o.URL, o.CAFile = "nats://nats:4222", "" }, "TLS"},
		{"one plain URL among TLS ones", func(o *Options) { o.URL, o.CAFile = "tls://a:4222,nats://b:4222", "" }, "TLS"},
		{"a certificate without its key", func(o *Options) { o.CertFile = "c.crt" }, "go together"},
		{"no role", func(o *Options) { o.Role = "" }, "Role is required"},
		{"an unknown role", func(o *Options) { o.Role = "root" }, "unknown role"},
		{"--dev: the embedded server", func(o *Options) { *o = Options{Role: RoleProxy, Dev: true} }, ""},
		{"--dev: a plain external server", func(o *Options) { *o = Options{Role: RoleProxy, Dev: true, URL: "nats://127.0.0.1:4222"} }, ""},
		{"--dev: credentials without a URL", func(o *Options) { *o = Options{Role: RoleProxy, Dev: true, NKeyFile: "k"} }, "need --nats-url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := deployed
			tc.edit(&o)
			err := o.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.want)
			}
		})
	}
}
