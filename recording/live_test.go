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

	"github.com/gatehouse-dev/gatehouse/masking"
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

// textOf returns s masked by the detectors of m.
func textOf(m *masking.Masker, s string) string {
	out, _ := m.Text(nil, []byte(s))
	return string(out)
}

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

// TestLiveMaskerEchoAfterAHeldPrompt: a key typed while the prompt is held back comes back
// with the prompt in one write; that write waits for the prompt's delay, and the echoes after it
// pass at once again, as they do after keys the terminal does not echo as typed (a password
// read with echo off, a carriage return echoed as a line end).
func TestLiveMaskerEchoAfterAHeldPrompt(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	c := &collector{}
	echo := &Echo{}
	l := NewLiveMasker(NewMasker(newMasker(t), nil), c.emit, LiveOptions{Delay: liveDelay, Clock: clk, Echo: echo})
	write := func(s string) {
		t.Helper()
		_, err := l.Write([]byte(s))
		require.NoError(t, err)
	}
	// typeKeys types s key by key and checks that each echo passes at once.
	typeKeys := func(s string) {
		t.Helper()
		for _, k := range []byte(s) {
			before := c.String()
			echo.Input([]byte{k})
			write(string(k))
			assert.Equal(t, before+string(k), c.String(), "the echo of %q passes at once", k)
		}
	}

	write("$ ")
	echo.Input([]byte("l"))
	write("l")
	assert.Empty(t, c.String(), "the prompt was not typed: it waits for its delay")
	clk.Step(liveDelay)
	assert.Equal(t, "$ l", c.String())
	typeKeys("s -a")

	echo.Input([]byte("\r"))
	write("\r\n")
	write("total 0\n$ ")
	clk.Step(liveDelay)
	typeKeys("read -s pw")
	echo.Input([]byte("\r"))
	write("\r\n")
	echo.Input([]byte("hunter2\r"))
	write("\n$ ")
	clk.Step(liveDelay)
	typeKeys("echo ok")
	require.NoError(t, l.Close())
	assert.Equal(t, "$ ls -a\r\ntotal 0\n$ read -s pw\r\n\n$ echo ok", c.String())
}

// TestLiveMaskerEchoPassesOnlyTypedOutput: only output that is exactly keys typed passes at once;
// a program that prints a secret around the echo of a key, or after it, does not get its start
// past the masker.
func TestLiveMaskerEchoPassesOnlyTypedOutput(t *testing.T) {
	m := newMasker(t)
	secret := "s3cr3t-from-a-Secret-7f3a"
	values := &Values{}
	ph := placeholder(t, m, secret)
	values.Add([]byte(secret), []byte(ph))
	maskedToken := string(textOf(m, githubToken))
	tests := []struct {
		name   string
		typed  []string // typed before the write of the same index
		writes []string
		now    string // what passes before the delay
		leak   []string
	}{
		{
			name:   "a write that ends with the typed keys",
			typed:  []string{"T0"},
			writes: []string{githubToken[:12], githubToken[12:] + "\n"},
			now:    maskedToken + "\n",
			leak:   []string{githubToken[:12]},
		},
		{
			name:   "a write that starts with the typed keys",
			typed:  []string{"gh"},
			writes: []string{githubToken[:12], githubToken[12:] + "\n"},
			now:    maskedToken + "\n",
			leak:   []string{githubToken[:12]},
		},
		{
			name:   "a write that holds the typed keys",
			typed:  []string{"4nd"},
			writes: []string{githubToken[:12], githubToken[12:] + "\n"},
			now:    maskedToken + "\n",
			leak:   []string{githubToken[:12]},
		},
		{
			name:   "a secret after a passed echo",
			typed:  []string{"x"},
			writes: []string{"x", secret[:8], secret[8:] + "\n"},
			now:    "x" + ph + "\n",
			leak:   []string{secret[:8]},
		},
		{
			name:   "the echo of keys typed while a secret was held",
			typed:  []string{"", secret[8:10]},
			writes: []string{secret[:8], secret[8:10], secret[10:] + "\n"},
			now:    ph + "\n",
			leak:   []string{secret[:8]},
		},
		{
			name:   "a secret made of typed keys and untyped output",
			typed:  []string{secret[:8]},
			writes: []string{secret[:8], secret[8:] + "\n"},
			now:    secret[:8] + ph + "\n",
			leak:   []string{secret, secret[8:]},
		},
		{
			name:   "typed keys echoed out of their order",
			typed:  []string{"ab"},
			writes: []string{"b", "a"},
			now:    "b",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Now())
			c := &collector{}
			echo := &Echo{}
			l := NewLiveMasker(NewMasker(m, values), c.emit, LiveOptions{Delay: liveDelay, Clock: clk, Echo: echo})
			for i, w := range tc.writes {
				if i < len(tc.typed) && tc.typed[i] != "" {
					echo.Input([]byte(tc.typed[i]))
				}
				_, err := l.Write([]byte(w))
				require.NoError(t, err)
			}
			assert.Equal(t, tc.now, c.String(), "what passes before the delay")
			clk.Step(time.Second)
			require.NoError(t, l.Close())
			for _, s := range tc.leak {
				assert.NotContains(t, c.String(), s)
			}
			if len(tc.leak) > 0 {
				assert.Contains(t, c.String(), "gatehouse:masked:")
			}
		})
	}
}
