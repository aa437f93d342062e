package mqtt

import (
	"sync"
	"time"
)

// pacer spaces reconnections across connections. autopaho counts attempts
// afresh after every connection that came up, starting with no delay, so a
// connection the broker drops right after accepting it (a session taken
// over by another client with the same id, a broker that closes at once)
// would be retried at full speed for ever, each side of a duplicate client
// id taking the session from the other thousands of times a second. The
// pacer counts such short-lived connections and keeps the backoff growing
// until a connection stays up for stable.
type pacer struct {
	lo, hi time.Duration
	stable time.Duration

	mu    sync.Mutex
	upAt  time.Time
	flaps int // consecutive connections that lasted less than stable
}

func newPacer(lo, hi time.Duration) *pacer {
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	hi = max(hi, lo)
	return &pacer{lo: lo, hi: hi, stable: max(time.Minute, 2*hi)}
}

func (p *pacer) up(now time.Time) {
	p.mu.Lock()
	p.upAt = now
	p.mu.Unlock()
}

// down records a lost connection and returns how many in a row were short.
func (p *pacer) down(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.upAt) < p.stable {
		p.flaps++
	} else {
		p.flaps = 0
	}
	return p.flaps
}

// flapsToWarn is how many short connections in a row make the
// "closed soon after accepting" error: one can be chance.
const flapsToWarn = 3

// delay is autopaho's ReconnectBackoff: attempt counts the failed attempts
// since the last connection went down.
func (p *pacer) delay(attempt int) time.Duration {
	p.mu.Lock()
	n := attempt + p.flaps
	p.mu.Unlock()
	return reconnectDelay(p.lo, p.hi, n)
}

// ErrorLogWindow is how often one repeated connection error is logged (with
// engine.MessageLogLimiter): a connection that fails the same way every few
// seconds for a day writes a line a minute, not twenty thousand.
const ErrorLogWindow = time.Minute
