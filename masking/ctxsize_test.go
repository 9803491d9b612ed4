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

// TestHelmRolesAfterOthers checks what child and elem rely on to call helmChild and helmElem
// only for the roles of Helm releases: for every role before roleHelmSecretData they leave the
// context as it is.
func TestHelmRolesAfterOthers(t *testing.T) {
	keys := []string{"release", "templates", "files", "schema", "data", "manifest", "resources", "x", ""}
	for r := range roleHelmSecretData {
		p := vctx{role: r, hide: noHide, obj: -1}
		for _, k := range keys {
			c := vctx{role: roleValue, hide: noHide, obj: -1, key: []byte(k)}
			assert.False(t, helmChild(p, []byte(k), &c), "role %d key %q", r, k)
			assert.Equal(t, vctx{role: roleValue, hide: noHide, obj: -1, key: []byte(k)}, c, "role %d key %q", r, k)
		}
		c := vctx{role: roleValue, hide: noHide, obj: -1, key: []byte("k")}
		helmElem(p, &c)
		assert.Equal(t, vctx{role: roleValue, hide: noHide, obj: -1, key: []byte("k")}, c, "role %d", r)
	}
	for _, r := range []role{roleHelmSecretData, roleHelmChart, roleHelmFile, roleHelmHook, roleHelmInfo, roleHelmResources} {
		changed := false
		for _, k := range keys {
			c := vctx{role: roleValue, hide: noHide, obj: -1}
			if helmChild(vctx{role: r, hide: noHide, obj: -1}, []byte(k), &c) && (c.role != roleValue || c.hide != noHide) {
				changed = true
			}
		}
		assert.True(t, changed, "role %d has members of its own", r)
	}
}
