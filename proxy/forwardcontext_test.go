package proxy

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type otherKey struct{}

// TestForwardContextIsItsParent: a forwarded request's context is its parent's, with the request's
// state as context.WithValue would carry it, whether or not its Done grows the caller's stack:
// the same Done channel, cancellation and values, and contexts derived from it are cancelled with
// the parent.
func TestForwardContextIsItsParent(t *testing.T) {
	for _, grow := range []bool{false, true} {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "other"))
		st := &requestState{auditID: "a"}
		ctx := &forwardContext{Context: parent, st: st, grow: grow}

		assert.Same(t, st, ctx.Value(stateKey{}))
		assert.Equal(t, "other", ctx.Value(otherKey{}))
		assert.Nil(t, ctx.Value("missing"))
		assert.Equal(t, parent.Done(), ctx.Done())
		done := make(chan (<-chan struct{}))
		go func() { done <- ctx.Done() }() // a new goroutine's small stack
		assert.Equal(t, parent.Done(), <-done)

		child, cancelChild := context.WithCancel(ctx)
		derived := context.WithValue(ctx, otherKey{}, "derived")
		assert.Same(t, st, derived.Value(stateKey{}))
		require.NoError(t, child.Err())
		cancel()
		<-child.Done()
		<-ctx.Done()
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
		assert.ErrorIs(t, child.Err(), context.Canceled)
		cancelChild()
	}
}
