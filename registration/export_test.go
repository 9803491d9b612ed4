package registration

import "k8s.io/utils/clock"

// SetClock sets the clock of the resync ticker.
func SetClock(o *Options, c clock.WithTicker) { o.clock = c }
