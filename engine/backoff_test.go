package engine

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCapWithHalfJitter(t *testing.T) {
	lo, hi := 100*time.Millisecond, 30*time.Second
	for attempt, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		for range 200 {
			if d := Backoff(lo, hi, attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %s, want within [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
	for _, attempt := range []int{9, 30, 64, 1 << 30} {
		if d := Backoff(lo, hi, attempt); d < hi/2 || d > hi {
			t.Fatalf("attempt %d: %s, want within [%s, %s]", attempt, d, hi/2, hi)
		}
	}
	if d := Backoff(time.Minute, time.Hour, 40); d < 30*time.Minute || d > time.Hour {
		t.Fatalf("large lo: %s (overflow?)", d)
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[Backoff(time.Second, time.Second, 0)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("no jitter: %d distinct delays in 50", len(seen))
	}
}
