package engine

import "time"

// NextDue is the schedule of a poller due every interval: given the slot a
// run was due at and the time it finished, it returns the next slot that has
// not passed and how many slots passed while the run overran. Those are
// skipped, not caught up, so a slow pipeline or device makes the poller
// slower instead of queueing polls.
func NextDue(due time.Time, every time.Duration, now time.Time) (next time.Time, missed int64) {
	next = due.Add(every)
	if late := now.Sub(next); late >= 0 {
		missed = int64(late/every) + 1
		next = next.Add(time.Duration(missed) * every)
	}
	return next, missed
}
