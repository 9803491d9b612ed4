package masking

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadConfigExample(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, ConfigAPIVersion, cfg.APIVersion)
	assert.Equal(t, "test-only-masking-key-9f4c2a7e61b8d035", string(cfg.Key), "trailing newline trimmed")
	require.Len(t, cfg.Rules, 1)
	assert.Equal(t, []string{"spec.password", "spec.connection.*", "metadata.annotations[example.com/bootstrap-token]"}, cfg.Rules[0].Paths)
	assert.Equal(t, 8388608, cfg.Limits.MaxEventBytes)

	m, err := New(cfg)
	require.NoError(t, err)

	cr := `{"apiVersion":"example.com/v1","kind":"DatabaseCredential","metadata":{"name":"db","namespace":"payments","annotations":{"example.com/bootstrap-token":"boot"}},"spec":{"host":"db.example.com","password":"p","connection":{"user":"app","dsn":"x","port":5432},"apiKey":"acme_0123456789abcdef0123456789abcdef"}}`
	out, st, err := m.JSON(nil, []byte(cr), Target{Group: "example.com", Version: "v1", Resource: "databasecredentials"})
	require.NoError(t, err)
	assert.Equal(t, expandFor(cfg.Key, `{"apiVersion":"example.com/v1","kind":"DatabaseCredential","metadata":{"name":"db","namespace":"payments","annotations":{"example.com/bootstrap-token":"<<P:boot>>"}},"spec":{"host":"db.example.com","password":"<<P:p>>","connection":{"user":"<<P:app>>","dsn":"<<P:x>>","port":"<<P:5432>>"},"apiKey":"<<P:acme_0123456789abcdef0123456789abcdef>>"}}`), string(out))
	assert.Equal(t, map[string]int{"database-credential": 5, "acme-api-key": 1}, st.Detectors)

	// A list of custom resources as the API server writes it: keys sorted, items before kind.
	list := `{"apiVersion":"example.com/v1","items":[{"apiVersion":"example.com/v1","kind":"DatabaseCredential","metadata":{"name":"a"},"spec":{"password":"p"}}],"kind":"DatabaseCredentialList","metadata":{"resourceVersion":"9"}}`
	out, _, err = m.JSON(nil, []byte(list), Target{Group: "example.com", Version: "v1", Resource: "databasecredentials"})
	require.NoError(t, err)
	assert.Contains(t, string(out), expandFor(cfg.Key, `"password":"<<P:p>>"`))

	// A patch body of the resource names no kind: the audit objectRef is the hint.
	ev := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","objectRef":{"resource":"databasecredentials","apiGroup":"example.com","apiVersion":"v1"},"requestObject":{"spec":{"password":"p"}}}`
	out, _, err = m.JSON(nil, []byte(ev), Target{})
	require.NoError(t, err)
	assert.Contains(t, string(out), expandFor(cfg.Key, `"password":"<<P:p>>"`))

	// Exemptions.
	cm := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"kube-root-ca.crt","namespace":"default"},"data":{"ca.crt":"-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"}}`
	out, st, err = m.JSON(nil, []byte(cm), Target{})
	require.NoError(t, err)
	assert.Equal(t, cm, string(out), "the ca.crt key of ConfigMaps is exempted")
	assert.Zero(t, st.Fields)

	tls := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"web-tls"},"data":{"tls.crt":"Y2VydA==","tls.key":"a2V5"},"type":"kubernetes.io/tls"}`
	out, _, err = m.JSON(nil, []byte(tls), Target{})
	require.NoError(t, err)
	assert.Equal(t, expandFor(cfg.Key, `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"web-tls"},"data":{"tls.crt":"Y2VydA==","tls.key":"<<B:key>>"},"type":"kubernetes.io/tls"}`), string(out))

	demo := `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x","namespace":"demo"},"data":{"api_token":"Zk3qP9xW2vL8nR4t","password":"hunter2"}}`
	out, _, err = m.JSON(nil, []byte(demo), Target{})
	require.NoError(t, err)
	assert.Equal(t, expandFor(cfg.Key, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x","namespace":"demo"},"data":{"api_token":"Zk3qP9xW2vL8nR4t","password":"<<P:hunter2>>"}}`), string(out))

	txt, _ := m.Text(nil, []byte("Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l"))
	assert.NotContains(t, string(txt), "YWxhZGRpbjpvcGVuc2VzYW1l", "the keyword rule still applies")
	txt, st = m.Text(nil, []byte("curl -u x Basic YWxhZGRpbjpvcGVuc2VzYW1l"))
	assert.Equal(t, "curl -u x Basic YWxhZGRpbjpvcGVuc2VzYW1l", string(txt), "basic-auth is turned off")
	assert.Zero(t, st.Fields)
}

func TestConfigErrors(t *testing.T) {
	key := Key("0123456789abcdef")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"short key", Config{Key: Key("short")}},
		{"bad regex", Config{Key: key, Detectors: []DetectorSpec{{Name: "x", Regex: "("}}}},
		{"empty match", Config{Key: key, Detectors: []DetectorSpec{{Name: "x", Regex: "a*"}}}},
		{"detector without name", Config{Key: key, Detectors: []DetectorSpec{{Regex: "a"}}}},
		{"name used twice", Config{Key: key, Detectors: []DetectorSpec{{Name: "jwt", Regex: "a"}}}},
		{"rule without paths", Config{Key: key, Rules: []FieldRule{{Name: "r", Kind: "K"}}}},
		{"rule with a bad path", Config{Key: key, Rules: []FieldRule{{Name: "r", Kind: "K", Paths: []string{"spec..x"}}}}},
		{"unknown detector exempted", Config{Key: key, Exemptions: []Exemption{{Detectors: []string{"nope"}}}}},
		{"exemption selecting nothing", Config{Key: key, Exemptions: []Exemption{{}}}},
		{"secret data exempted wholesale", Config{Key: key, Exemptions: []Exemption{{Kind: "Secret", Detectors: []string{"secret-data"}}}}},
		{"structural rule exempted", Config{Key: key, Exemptions: []Exemption{{Kind: "TokenRequest", Detectors: []string{"token-request"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
	var paths []string
	for i := 0; i <= maxRulePaths; i++ {
		paths = append(paths, fmt.Sprintf("spec.f%d", i))
	}
	_, err := New(Config{Key: key, Rules: []FieldRule{{Name: "r", Kind: "K", Paths: paths}}})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	for name, content := range map[string]string{
		"wrong-kind.yaml":    "apiVersion: masking.gatehouse.dev/v1alpha1\nkind: Other\n",
		"unknown-field.yaml": "apiVersion: masking.gatehouse.dev/v1alpha1\nkind: MaskingConfig\nbogus: 1\n",
		"no-key-file.yaml":   "apiVersion: masking.gatehouse.dev/v1alpha1\nkind: MaskingConfig\nkeyFile: missing.key\n",
		"not-yaml.yaml":      "{{{",
	} {
		_, err := LoadConfig(write(name, content))
		require.ErrorIs(t, err, ErrInvalidConfig, name)
	}
	_, err := LoadConfig(filepath.Join(dir, "absent.yaml"))
	require.ErrorIs(t, err, ErrInvalidConfig)

	// The key never shows in errors or when a Config is printed.
	secretKey := "super-secret-key-material-0123456789"
	write("k.key", secretKey)
	cfg, err := LoadConfig(write("ok.yaml", "apiVersion: masking.gatehouse.dev/v1alpha1\nkind: MaskingConfig\nkeyFile: k.key\n"))
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s %x %q", cfg.Key, cfg.Key, cfg.Key)} {
		assert.NotContains(t, s, secretKey)
		assert.NotContains(t, s, fmt.Sprintf("%x", secretKey))
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "key", cfg.Key, "cfg", cfg)
	assert.NotContains(t, b.String(), secretKey)
	_, err = New(Config{Key: Key(secretKey[:5])})
	require.Error(t, err)
	assert.False(t, strings.Contains(err.Error(), secretKey[:5]))
	assert.True(t, errors.Is(err, ErrInvalidConfig))
}

func TestGuessResource(t *testing.T) {
	for kind, want := range map[string]string{"DatabaseCredential": "databasecredentials", "Policy": "policies", "Gateway": "gateways", "Ingress": "ingresses", "": ""} {
		assert.Equal(t, want, guessResource(kind), kind)
	}
}

func TestStatsMerge(t *testing.T) {
	var s Stats
	s.Merge(Stats{})
	assert.Nil(t, s.Detectors)
	s.Merge(Stats{Fields: 2, Detectors: map[string]int{"jwt": 2}})
	s.Merge(Stats{Fields: 1, Detectors: map[string]int{"jwt": 1}})
	assert.Equal(t, Stats{Fields: 3, Detectors: map[string]int{"jwt": 3}}, s)
}
