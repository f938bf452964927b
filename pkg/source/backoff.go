package source

import (
	"context"

	"github.com/gitorch/gitorch/pkg/backoff"
	"github.com/gitorch/gitorch/pkg/clock"
)

// Retry calls op until it succeeds, fails with an error that IsRetryable
// says is not worth retrying, has been called attempts times (attempts <= 0
// means no limit), or ctx is done. It waits b.Delay(n) on clk (nil: the
// real clock) after the n-th failure and returns the last error.
func Retry(ctx context.Context, b backoff.Backoff, attempts int, clk clock.Clock, op func(context.Context) error) error {
	clk = clock.OrReal(clk)
	for n := 1; ; n++ {
		err := op(ctx)
		if err == nil || !IsRetryable(err) || (attempts > 0 && n >= attempts) {
			return err
		}
		t := clk.NewTimer(b.Delay(n))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C():
		}
	}
}
