package masking

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkBase64Std compares decodeBase64Std with encoding/base64 on src.
func checkBase64Std(t testing.TB, src []byte) {
	t.Helper()
	want := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	wn, werr := base64.StdEncoding.Decode(want, src)
	got := make([]byte, base64.StdEncoding.DecodedLen(len(src))+2)
	gn, gerr := decodeBase64Std(got, src)
	require.Equal(t, werr, gerr, "%q", src)
	require.Equal(t, wn, gn, "%q", src)
	require.Equal(t, want[:wn], got[:gn], "%q", src)
}

func TestDecodeBase64Std(t *testing.T) {
	raw := make([]byte, 200)
	for i := range raw {
		raw[i] = byte(i*131 + i*i)
	}
	var inputs []string
	for n := range len(raw) {
		inputs = append(inputs, base64.StdEncoding.EncodeToString(raw[:n]), base64.RawStdEncoding.EncodeToString(raw[:n]))
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for i := 0; i < 40; i++ {
		for _, bad := range []string{"=", "\n", "\r", "-", "_", " ", "\x00", "\xff", "*"} {
			inputs = append(inputs, enc[:i]+bad+enc[i+1:], enc[:i]+bad+enc[i:])
		}
	}
	inputs = append(inputs, "", "Zm9v\r\nYmFy", "Zm9vYmFy\nZm9vYmFy", "Zm9vYmFyZm9vYmE=", "Zm9vYmFyZm9vYg==", "Zm9vYmFyZm9vYg=", "Zm9vYmFyZm9vYg===", "Zm9vYmFyZm9vY===")
	for _, in := range inputs {
		checkBase64Std(t, []byte(in))
	}
}

func FuzzDecodeBase64Std(f *testing.F) {
	f.Add([]byte("Zm9vYmFyZm9vYmFy"))
	f.Add([]byte("Zm9vYmFy\r\nZm9vYmE="))
	f.Add([]byte("Zm9vYmFyZm9vYg=="))
	f.Fuzz(func(t *testing.T, src []byte) {
		checkBase64Std(t, src)
		checkBase64Std(t, []byte(base64.StdEncoding.EncodeToString(src)))
	})
}
