// Package backoff is gitorch's one back-off policy: how long to wait
// after the n-th failure in a row. It is pure (no clock, no randomness of
// its own), so pkg/plan decides with it and the loops that retry fetches
// wait with it.
package backoff

import "time"

// Backoff is an exponential back-off: Initial after the first failure,
// multiplied by Factor after each further one, capped at Max.
type Backoff struct {
	Initial time.Duration // default 1 s
	Max     time.Duration // default 5 min
	Factor  float64       // default 2
	// Reset: a container that ran at least this long before it exited
	// starts its back-off from Initial again (0: never).
	Reset time.Duration
	// Jitter, when set, perturbs each delay (for example by ±20% drawn
	// from an injected random source) so that nodes do not retry in step.
	Jitter func(time.Duration) time.Duration
}

// Delay is the wait after the given number of failures in a row (1 for
// the first).
func (b Backoff) Delay(failures int) time.Duration {
	initial, limit, factor := b.Initial, b.Max, b.Factor
	if initial <= 0 {
		initial = time.Second
	}
	if limit <= 0 {
		limit = 5 * time.Minute
	}
	if factor < 1 {
		factor = 2
	}
	d := float64(initial)
	for i := 1; i < failures && d < float64(limit); i++ {
		d *= factor
	}
	out := time.Duration(d)
	if d >= float64(limit) {
		out = limit
	}
	if b.Jitter != nil {
		out = b.Jitter(out)
	}
	return out
}
