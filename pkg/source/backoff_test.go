package source

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gitorch/gitorch/pkg/backoff"
	"github.com/gitorch/gitorch/pkg/clock"
	"github.com/gitorch/gitorch/pkg/clock/clocktest"
)

// fakeClock records the waits asked of it and fires at once.
type fakeClock struct {
	clock.Clock
	waits []time.Duration
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	c.waits = append(c.waits, d)
	t := clocktest.New(time.Time{})
	tm := t.NewTimer(0)
	t.Advance(0)
	return tm
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
			clk := &fakeClock{}
			calls := 0
			err := Retry(context.Background(), backoff.Backoff{Initial: time.Second}, tc.attempts, clk, func(context.Context) error {
				err := tc.errs[calls]
				calls++
				return err
			})
			if calls != tc.calls || !slices.Equal(clk.waits, tc.waits) || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("calls=%d waits=%v err=%v; want calls=%d waits=%v err=%v", calls, clk.waits, err, tc.calls, tc.waits, tc.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The fake clock never moves: only the context can end the wait.
	err := Retry(ctx, backoff.Backoff{}, 0, clocktest.New(time.Time{}), func(context.Context) error { return unreachable })
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled retry: %v", err)
	}
}
