package main

import (
	"testing"
	"time"
)

func TestAgeReadsLikeKubectl(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		ago  time.Duration
		want string
	}{
		{0, "0s"},
		{-time.Minute, "0s"},
		{45 * time.Second, "45s"},
		{119 * time.Second, "119s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{5 * time.Minute, "5m"},
		{42 * time.Minute, "42m"},
		{5*time.Hour + 3*time.Minute, "5h3m"},
		{5 * time.Hour, "5h"},
		{30 * time.Hour, "30h"},
		{3*24*time.Hour + 4*time.Hour, "3d4h"},
		{12 * 24 * time.Hour, "12d"},
	}
	for _, c := range cases {
		if got := age(now.Add(-c.ago), now); got != c.want {
			t.Errorf("age of %v: %q, want %q", c.ago, got, c.want)
		}
	}
}
