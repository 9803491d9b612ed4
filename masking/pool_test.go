package masking

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPooledWalkerForgetsTextKeys checks that what text showed as keys does not outlive the
// document: a key found in text can be part of a value (the part before the colon of a
// password), and a pooled walker serves the next response, of any client.
func TestPooledWalkerForgetsTextKeys(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name string
		doc  string
	}{
		{"configmap text", `{"kind":"ConfigMap","apiVersion":"v1","data":{"app.conf":"password=hunter2:plenty\nsecretkey: hunter3:more\n"}}`},
		{"json in a string", `{"kind":"ConfigMap","apiVersion":"v1","data":{"cfg.json":"{\"conf\":\"password=hunter2:plenty\\napi_token: hunter3:more\"}"}}`},
		{"pod command", `{"kind":"Pod","apiVersion":"v1","spec":{"containers":[{"name":"a","args":["sh","-c","run --password=hunter2:plenty"]}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := m.getWalker(Target{})
			hint := m.targetType(Target{})
			w.reset(nil, []byte(tt.doc), hint)
			_, err := w.document(0, hint)
			require.NoError(t, err)
			require.True(t, anyTextKeys(w), "the document's text keys were cached: the test can fail")

			m.putWalker(w)
			require.False(t, anyTextKeys(w), "a pooled walker holds no text key")
		})
	}
}

// anyTextKeys reports whether w or a walker it works with holds a text key.
func anyTextKeys(w *walker) bool {
	if w == nil {
		return false
	}
	return w.textKeys != keyCache{} || anyTextKeys(w.sub) || anyTextKeys(w.nest)
}
