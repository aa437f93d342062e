package engine

import (
	"math/rand/v2"
	"time"
)

// Backoff is the delay before retry number attempt (0 for the first): lo
// doubled attempt times, capped at hi, of which the upper half is random so
// that clients that lost the same server do not return in step.
func Backoff(lo, hi time.Duration, attempt int) time.Duration {
	d := max(lo, 0)
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}
