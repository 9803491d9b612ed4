package recording

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// handClock is a fake clock whose AfterFunc timers go off only when a test makes them, in the
// two steps of a real timer: it fires (Stop no longer stops it), then its function runs, which
// meanwhile may wait for a lock the code under test holds.
type handClock struct {
	*clocktesting.FakeClock

	mu     sync.Mutex
	timers []*handTimer
}

func newHandClock() *handClock {
	return &handClock{FakeClock: clocktesting.NewFakeClock(time.Now())}
}

func (c *handClock) AfterFunc(_ time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &handTimer{f: f}
	c.timers = append(c.timers, t)
	return t
}

// timer returns the i-th timer started.
func (c *handClock) timer(t *testing.T, i int) *handTimer {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Greater(t, len(c.timers), i, "timers started")
	return c.timers[i]
}

type handTimer struct {
	mu             sync.Mutex
	f              func()
	fired, stopped bool
}

func (t *handTimer) C() <-chan time.Time { return nil }

func (t *handTimer) Reset(time.Duration) bool { panic("handTimer: Reset is not used") }

func (t *handTimer) Stop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fired || t.stopped {
		return false
	}
	t.stopped = true
	return true
}

// fire makes the timer go off without running its function yet.
func (t *handTimer) fire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fired = !t.stopped
}

// run runs the function of a timer that fired, late.
func (t *handTimer) run() {
	t.mu.Lock()
	fired := t.fired
	t.mu.Unlock()
	if fired {
		t.f()
	}
}

const liveDelay = 10 * time.Millisecond

// TestLiveMaskerHoldsEachPartialLine: a partial line is held for the whole delay from its first
// byte, however the line before it ended: the timer of a line that already ended does not pass
// the next one on early, with half a token in it.
func TestLiveMaskerHoldsEachPartialLine(t *testing.T) {
	m := newMasker(t)
	write := func(t *testing.T, l *LiveMasker, s string) {
		t.Helper()
		_, err := l.Write([]byte(s))
		require.NoError(t, err)
	}
	t.Run("a line ended before its delay", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(time.Now())
		c := &collector{}
		l := NewLiveMasker(NewMasker(m, nil), c.emit, LiveOptions{Delay: liveDelay, Clock: clk})
		write(t, l, "$ ")
		clk.Step(liveDelay - time.Millisecond)
		write(t, l, "cat token\n"+githubToken[:12])
		clk.Step(time.Millisecond)
		assert.Equal(t, "$ cat token\n", c.String(), "the next line is held for the delay from its start")
		clk.Step(liveDelay - 2*time.Millisecond)
		assert.Equal(t, "$ cat token\n", c.String())
		write(t, l, githubToken[12:]+"\n")
		clk.Step(time.Second)
		require.NoError(t, l.Close())
		assert.NotContains(t, c.String(), githubToken[:12])
		assert.Contains(t, c.String(), "$ cat token\ngatehouse:masked:")
	})
	t.Run("a line passed on in pieces", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(time.Now())
		c := &collector{}
		l := NewLiveMasker(NewMasker(m, nil), c.emit, LiveOptions{Delay: liveDelay, MaxLine: 64, Clock: clk})
		write(t, l, "progress ")
		clk.Step(liveDelay - time.Millisecond)
		write(t, l, strings.Repeat(".", 64))
		write(t, l, githubToken[:12])
		clk.Step(time.Millisecond)
		assert.NotContains(t, c.String(), githubToken[:12], "the next piece is held for the delay from its start")
		write(t, l, githubToken[12:]+"\n")
		require.NoError(t, l.Close())
		assert.NotContains(t, c.String(), githubToken[:12])
		assert.Contains(t, c.String(), "gatehouse:masked:")
	})
	t.Run("a partial line nothing completes passes after the delay", func(t *testing.T) {
		clk := clocktesting.NewFakeClock(time.Now())
		c := &collector{}
		l := NewLiveMasker(NewMasker(m, nil), c.emit, LiveOptions{Delay: liveDelay, Clock: clk})
		write(t, l, "one\ntw")
		clk.Step(liveDelay / 2)
		write(t, l, "o\nthr")
		clk.Step(liveDelay - time.Millisecond)
		assert.Equal(t, "one\ntwo\n", c.String())
		clk.Step(time.Millisecond)
		assert.Equal(t, "one\ntwo\nthr", c.String())
		require.NoError(t, l.Close())
	})
	t.Run("the timer of a line that ended runs late", func(t *testing.T) {
		clk := newHandClock()
		c := &collector{}
		l := NewLiveMasker(NewMasker(m, nil), c.emit, LiveOptions{Delay: liveDelay, Clock: clk})
		write(t, l, "$ ")
		late := clk.timer(t, 0)
		late.fire() // and waits for the lock while the line ends
		write(t, l, "cat token\n"+githubToken[:12])
		late.run()
		assert.Equal(t, "$ cat token\n", c.String(), "the next line is held for its own delay")
		write(t, l, githubToken[12:]+"\n")
		require.NoError(t, l.Close())
		assert.NotContains(t, c.String(), githubToken[:12])
		assert.Contains(t, c.String(), "$ cat token\ngatehouse:masked:")
	})
}
