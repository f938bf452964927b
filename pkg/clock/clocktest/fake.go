// Package clocktest has a fake clock.Clock for tests: time moves only
// when the test says so, and timers fire then, in order.
package clocktest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/clock"
)

// Fake is a clock that stands still until Advance.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	seq    int
}

var _ clock.Clock = (*Fake)(nil)

// New returns a fake clock showing t.
func New(t time.Time) *Fake { return &Fake{now: t} }

type timer struct {
	f      *Fake
	seq    int
	when   time.Time
	period time.Duration // tickers
	ch     chan time.Time
	fn     func()
	active bool
}

// Now is the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) add(d, period time.Duration, fn func()) *timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	t := &timer{f: f, seq: f.seq, when: f.now.Add(d), period: period, fn: fn, active: true}
	if fn == nil {
		t.ch = make(chan time.Time, 1)
	}
	f.timers = append(f.timers, t)
	return t
}

// NewTimer fires once when the clock passes d from now.
func (f *Fake) NewTimer(d time.Duration) clock.Timer { return f.add(d, 0, nil) }

// AfterFunc calls fn (in its own goroutine) when the clock passes d from
// now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer { return f.add(d, 0, fn) }

// NewTicker fires every d of fake time.
func (f *Fake) NewTicker(d time.Duration) clock.Ticker { return ticker{f.add(d, d, nil)} }

// Advance moves the clock by d, firing the timers due on the way in the
// order of their deadlines.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.now.Add(d)
	for {
		var next *timer
		for _, t := range f.timers {
			if t.active && !t.when.After(end) && (next == nil || t.when.Before(next.when) || t.when.Equal(next.when) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			break
		}
		if next.when.After(f.now) {
			f.now = next.when
		}
		if next.period > 0 {
			next.when = next.when.Add(next.period)
		} else {
			next.active = false
		}
		if next.fn != nil {
			go next.fn()
		} else {
			select {
			case next.ch <- f.now:
			default:
			}
		}
	}
	f.now = end
	f.timers = slices.DeleteFunc(f.timers, func(t *timer) bool { return !t.active })
	f.mu.Unlock()
}

// Timers is how many timers and tickers are waiting: tests wait for the
// code under test to arm its timer before they advance the clock.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.active {
			n++
		}
	}
	return n
}

// Pending is how long each waiting timer has left, shortest first.
func (f *Fake) Pending() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, t := range f.timers {
		if t.active {
			out = append(out, t.when.Sub(f.now))
		}
	}
	slices.Sort(out)
	return out
}

// BlockUntil waits (in real time, up to 10 s) until at least n timers
// wait: the code under test armed them.
func (f *Fake) BlockUntil(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.Timers() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d timers wait, want %d", f.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *timer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.when, t.active = t.f.now.Add(d), true
	if !slices.Contains(t.f.timers, t) {
		t.f.timers = append(t.f.timers, t)
	}
	return was
}

type ticker struct{ t *timer }

func (k ticker) C() <-chan time.Time { return k.t.ch }
func (k ticker) Stop()               { k.t.Stop() }
