package recording

import (
	"context"
	"io"
	"time"

	"k8s.io/utils/clock"
)

// PlayOptions tune Play.
type PlayOptions struct {
	// Speed multiplies the playback speed. Default 1.
	Speed float64
	// IdleLimit caps every pause at that long (after Speed), as asciinema's --idle-time-limit
	// does; 0 keeps the recording's pauses (or the header's idle_time_limit, if it has one).
	IdleLimit time.Duration
	// Clock waits between events. Default the real clock.
	Clock clock.Clock
}

// Play writes what the terminal showed (stdout and stderr events) to w with the recording's
// timing, until the end or ctx ends.
func Play(ctx context.Context, w io.Writer, c *Cast, o PlayOptions) error {
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.IdleLimit == 0 && c.Header.IdleTimeLimit > 0 {
		o.IdleLimit = time.Duration(c.Header.IdleTimeLimit * float64(time.Second))
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	var last time.Duration
	for _, e := range c.Events {
		if e.Code != CodeOutput && e.Code != CodeStderr {
			continue
		}
		pause := time.Duration(float64(e.Time-last) / o.Speed)
		last = e.Time
		if o.IdleLimit > 0 && pause > o.IdleLimit {
			pause = o.IdleLimit
		}
		if pause > 0 {
			t := o.Clock.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C():
			}
		}
		if _, err := io.WriteString(w, e.Data); err != nil {
			return err
		}
	}
	return nil
}
