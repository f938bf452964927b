package backoff

import (
	"slices"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"defaults: 1 s doubling to 5 min", Backoff{}, []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}},
		{"kubelet's crash back-off", Backoff{Initial: 10 * time.Second, Max: 300 * time.Second}, []time.Duration{10, 20, 40, 80, 160, 300, 300, 300, 300, 300, 300}},
		{"factor 3, cap 60 s", Backoff{Initial: time.Second, Max: time.Minute, Factor: 3}, []time.Duration{1, 3, 9, 27, 60, 60, 60, 60, 60, 60, 60}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []time.Duration
			for n := 1; n <= len(tc.want); n++ {
				got = append(got, tc.b.Delay(n))
			}
			want := slices.Clone(tc.want)
			for i := range want {
				want[i] *= time.Second
			}
			if !slices.Equal(got, want) {
				t.Fatalf("delays %v, want %v", got, want)
			}
		})
	}
}

func TestJitterIsApplied(t *testing.T) {
	b := Backoff{Initial: time.Second, Jitter: func(d time.Duration) time.Duration { return d + time.Millisecond }}
	if got := b.Delay(2); got != 2*time.Second+time.Millisecond {
		t.Fatalf("Delay(2) = %v", got)
	}
}
