package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// fakeClock records the waits asked of it and returns at once.
type fakeClock struct{ waits []time.Duration }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 10 * time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, b.Delay(n))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
	if d := (Backoff{}).Delay(1000); d != 5*time.Minute {
		t.Errorf("default cap = %v", d)
	}
	half := Backoff{Initial: time.Second, Jitter: func(d time.Duration) time.Duration { return d / 2 }}
	if d := half.Delay(2); d != time.Second {
		t.Errorf("jitter not applied: %v", d)
	}
}

func TestBackoffRetry(t *testing.T) {
	unreachable := fmt.Errorf("fetch x: %w", &kindError{ErrUnreachable, "remote unreachable", errors.New("connection refused")})
	tests := []struct {
		name     string
		errs     []error // returned by successive calls; nil ends
		attempts int
		calls    int
		waits    []time.Duration
		wantErr  error
	}{
		{"succeeds after two failures", []error{unreachable, unreachable, nil}, 5, 3, []time.Duration{time.Second, 2 * time.Second}, nil},
		{"gives up after attempts", []error{unreachable, unreachable, unreachable, unreachable}, 3, 3, []time.Duration{time.Second, 2 * time.Second}, ErrUnreachable},
		{"does not retry auth errors", []error{&kindError{ErrAuth, "authentication failed", nil}}, 5, 1, nil, ErrAuth},
		{"first try", []error{nil}, 5, 1, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			calls := 0
			err := Backoff{Initial: time.Second, Clock: clock}.Retry(context.Background(), tc.attempts, func(context.Context) error {
				err := tc.errs[calls]
				calls++
				return err
			})
			if calls != tc.calls || !slices.Equal(clock.waits, tc.waits) || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("calls=%d waits=%v err=%v; want calls=%d waits=%v err=%v", calls, clock.waits, err, tc.calls, tc.waits, tc.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	blocked := blockingClock{}
	err := Backoff{Clock: blocked}.Retry(ctx, 0, func(context.Context) error { return unreachable })
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled retry: %v", err)
	}
}

// blockingClock never fires: only the context can end the wait.
type blockingClock struct{}

func (blockingClock) After(time.Duration) <-chan time.Time { return nil }
