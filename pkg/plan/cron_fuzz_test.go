package plan

import (
	"testing"
	"time"
)

// FuzzParseCronSchedule: a schedule comes from the repository, which is
// untrusted. Parsing never panics, and a schedule that parses gives a
// last run at or before now and a next run after it.
func FuzzParseCronSchedule(f *testing.F) {
	for _, s := range []string{"* * * * *", "*/5 * * * *", "@hourly", "@every 90s", "0 0 29 2 *",
		"0 0 30 2 *", "0 9 * * MON-FRI", "59 23 31 12 *", "@every 0s", "1-70 * * * *", "*/0 * * * *"} {
		f.Add(s, "")
		f.Add(s, "America/New_York")
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, schedule, tz string) {
		if tz != "" && tz != "America/New_York" && tz != "Europe/Berlin" {
			tz = "" // the zone database is not the subject here
		}
		s, err := ParseCronSchedule(schedule, tz)
		if err != nil {
			return
		}
		if last := s.Last(now); !last.IsZero() && last.After(now) {
			t.Fatalf("%q: last run %s after now", schedule, last)
		}
		if next := s.Next(now); !next.IsZero() && !next.After(now) {
			t.Fatalf("%q: next run %s not after now", schedule, next)
		}
	})
}
