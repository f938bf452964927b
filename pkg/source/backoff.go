package source

import (
	"context"
	"time"
)

// Clock is the time source of a Backoff; tests pass one that does not
// sleep.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff spaces out retries of an operation that failed because the
// remote was unreachable: Initial, then multiplied by Factor each attempt,
// capped at Max.
type Backoff struct {
	Initial time.Duration // default 1s
	Max     time.Duration // default 5m
	Factor  float64       // default 2
	// Jitter, when set, perturbs each delay (for example by ±20% drawn
	// from an injected random source) so that nodes do not retry in step.
	Jitter func(time.Duration) time.Duration
	// Clock defaults to the real clock.
	Clock Clock
}

// Delay is the wait after the given number of failed attempts (1 for the
// first failure).
func (b Backoff) Delay(failures int) time.Duration {
	initial, max, factor := b.Initial, b.Max, b.Factor
	if initial <= 0 {
		initial = time.Second
	}
	if max <= 0 {
		max = 5 * time.Minute
	}
	if factor < 1 {
		factor = 2
	}
	d := float64(initial)
	for i := 1; i < failures && d < float64(max); i++ {
		d *= factor
	}
	out := time.Duration(d)
	if d >= float64(max) {
		out = max
	}
	if b.Jitter != nil {
		out = b.Jitter(out)
	}
	return out
}

// Retry calls op until it succeeds, fails with an error that IsRetryable
// says is not worth retrying, has been called attempts times (attempts <= 0
// means no limit), or ctx is done. It waits Delay(n) after the n-th
// failure and returns the last error.
func (b Backoff) Retry(ctx context.Context, attempts int, op func(context.Context) error) error {
	clock := b.Clock
	if clock == nil {
		clock = realClock{}
	}
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil || !IsRetryable(err) || (attempts > 0 && n >= attempts) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-clock.After(b.Delay(n)):
		}
	}
}
