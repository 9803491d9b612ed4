package masking

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// TestVctxSize keeps the context of a value, copied for every member and element, at six
// words: a field added or moved so that it leaves padding shows here.
func TestVctxSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(vctx{}), uintptr(48))
}
