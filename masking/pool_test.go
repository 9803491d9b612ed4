package masking

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-dev/gatehouse/masking/maskingtest"
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

// TestBodyInto masks bodies into buffers that held other bytes, large enough or not: the
// result is Body's, and it is written into the buffer when the buffer is large enough.
func TestBodyInto(t *testing.T) {
	m := newMasker(t, Config{})
	secrets := Target{Resource: "secrets"}
	list := maskingtest.SecretList(64 << 10)
	tests := []struct {
		name, contentType string
		body              []byte
		t                 Target
	}{
		{"secret list", "application/json", list, secrets},
		{"nothing to mask", "application/json", []byte(`{"kind":"ConfigMap","apiVersion":"v1","data":{"mode":"safe"}}`), Target{Resource: "configmaps"}},
		{"text", "text/plain", []byte("connecting with password=hunter2hunter2 to the db\n"), Target{}},
	}
	for _, tt := range tests {
		want, wantStats, err := m.Body(tt.contentType, "", tt.body, tt.t)
		require.NoError(t, err)
		for _, size := range []int{0, 10, 2 * len(tt.body), 4 * len(list)} {
			t.Run(fmt.Sprintf("%s/buffer %d", tt.name, size), func(t *testing.T) {
				buf := bytes.Repeat([]byte{'x'}, size)[:size/2]
				got, stats, err := m.BodyInto(buf, tt.contentType, "", tt.body, tt.t)
				require.NoError(t, err)
				assert.Equal(t, string(want), string(got))
				assert.Equal(t, wantStats, stats)
				if stats.Fields > 0 && size >= 2*len(tt.body) {
					assert.Same(t, &buf[:1][0], &got[0], "a buffer large enough is used")
				}
			})
		}
	}
}

// TestBigBuffers grows each slice of a walker beyond maxPooledBuffer in turn: a walker holding
// any of them is not pooled, so that one large document does not leave its scratch space in
// the pool.
func TestBigBuffers(t *testing.T) {
	m := newMasker(t, Config{})
	typ := reflect.TypeFor[walker]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Slice || f.Name == "src" || f.Name == "argvWord" {
			continue // the input, and a part of argv: not the walker's own
		}
		t.Run(f.Name, func(t *testing.T) {
			w := newWalker(m)
			require.False(t, w.bigBuffers())
			v := reflect.ValueOf(w).Elem().Field(i)
			v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
			v.Set(reflect.MakeSlice(v.Type(), 0, maxPooledBuffer+1))
			assert.True(t, w.bigBuffers())
		})
	}
}
