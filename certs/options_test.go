package certs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/gatehouse-dev/gatehouse/certs"
)

func TestOptionsValidate(t *testing.T) {
	publish := func(context.Context, []byte) error { return nil }
	valid := certs.Options{SecretNamespace: "gatehouse", SecretName: "gatehouse-webhook-ca", DNSNames: []string{"gatehouse-webhook.gatehouse.svc"}, Publish: publish}
	tests := []struct {
		name   string
		change func(*certs.Options)
		ok     bool
	}{
		{"valid", func(*certs.Options) {}, true},
		{"no secret", func(o *certs.Options) { o.SecretName = "" }, false},
		{"no namespace", func(o *certs.Options) { o.SecretNamespace = "" }, false},
		{"no names", func(o *certs.Options) { o.DNSNames = nil }, false},
		{"nothing publishes the CA", func(o *certs.Options) { o.Publish = nil }, false},
		{"CA shorter than its certificates", func(o *certs.Options) { o.CADuration, o.CertDuration = time.Hour, 2*time.Hour }, false},
		{"negative grace", func(o *certs.Options) { o.RotationGrace = -time.Second }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.change(&o)
			err := o.Validate()
			if tc.ok {
				require.NoError(t, err)
				_, err = certs.New(&rest.Config{Host: "https://127.0.0.1:1"}, o)
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, certs.ErrInvalidOptions), "%v", err)
			_, err = certs.New(&rest.Config{Host: "https://127.0.0.1:1"}, o)
			assert.ErrorIs(t, err, certs.ErrInvalidOptions)
		})
	}
}

func TestFlagsValidate(t *testing.T) {
	valid := certs.Flags{Secret: "gatehouse/gatehouse-proxy-ca", DNSNames: []string{"gatehouse-proxy.gatehouse.svc"},
		CAConfigMap: "gatehouse/gatehouse-proxy-ca", CADuration: certs.DefaultCADuration, CertDuration: certs.DefaultCertDuration}
	tests := []struct {
		name   string
		change func(*certs.Flags)
		ok     bool
	}{
		{"valid", func(*certs.Flags) {}, true},
		{"disabled", func(f *certs.Flags) { *f = certs.Flags{} }, true},
		{"secret without namespace", func(f *certs.Flags) { f.Secret = "gatehouse-proxy-ca" }, false},
		{"secret with a path", func(f *certs.Flags) { f.Secret = "gatehouse/a/b" }, false},
		{"configmap without namespace", func(f *certs.Flags) { f.CAConfigMap = "/gatehouse-proxy-ca" }, false},
		{"no DNS names", func(f *certs.Flags) { f.DNSNames = nil }, false},
		{"CA shorter than its certificates", func(f *certs.Flags) { f.CADuration = time.Hour }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := valid
			tc.change(&f)
			assert.Equal(t, tc.ok, f.Validate() == nil, "%v", f.Validate())
		})
	}
}
