package engine

import (
	"testing"
	"time"
)

func TestNextDueSkipsPassedSlots(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := time.Second
	for _, c := range []struct {
		ran     time.Duration // when the run due at t0 finished, after t0
		next    time.Duration
		skipped int64
	}{
		{300 * time.Millisecond, s, 0},
		{999 * time.Millisecond, s, 0},
		{s, 2 * s, 1}, // the slot at 1 s is now: too late to start it
		{1500 * time.Millisecond, 2 * s, 1},
		{2500 * time.Millisecond, 3 * s, 2},
		{10*s + 1, 11 * s, 10},
	} {
		next, missed := NextDue(t0, s, t0.Add(c.ran))
		if next.Sub(t0) != c.next || missed != c.skipped {
			t.Errorf("finished after %s: next %s, %d skipped; want %s, %d", c.ran, next.Sub(t0), missed, c.next, c.skipped)
		}
	}
}
