package testbed

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// WaitFor calls cond every 50ms until it returns nil. When timeout passes or ctx ends first, it
// returns cond's last error, wrapped with the context's. Tests wait on a condition this way, or
// on a channel or an injected clock: never by sleeping.
func WaitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	last := fmt.Errorf("not checked within %s", timeout)
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", err, last)
	}
	return nil
}
