package engine

import (
	"sync"
	"sync/atomic"
	"time"
)

// LogLimiter keeps a repeating log line from flooding the log: it lets Burst
// lines through per Every and counts the ones it holds back, so the next line
// let through can say how many were not written. The zero value lets one
// line through per 5 s. It is safe for concurrent use.
type LogLimiter struct {
	Every time.Duration // 0: 5 s
	Burst int           // lines per Every; 0: 1

	// While the window is full, Allow only counts, without the lock: the
	// engine asks once per rejected point of a batch.
	fullUntil atomic.Int64 // end of the full window; 0: not full
	fastHeld  atomic.Int64 // lines held back that way

	mu         sync.Mutex
	started    bool
	start      int64 // of the current window
	n          int   // lines let through in it
	suppressed int   // lines held back since the last one let through
}

// Allow reports whether a line may be written at now (Now(): monotonic
// nanoseconds, cheaper than time.Now), and how many were held back since the
// last one that was.
func (l *LogLimiter) Allow(now int64) (ok bool, suppressed int) {
	if end := l.fullUntil.Load(); end != 0 && now < end {
		l.fastHeld.Add(1)
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started || now-l.start >= int64(l.every()) {
		l.started, l.start, l.n = true, now, 0
		l.fullUntil.Store(0)
	}
	burst := max(l.Burst, 1)
	if l.n >= burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	if l.n == burst {
		l.fullUntil.Store(l.start + int64(l.every()))
	}
	suppressed = l.suppressed + int(l.fastHeld.Swap(0))
	l.suppressed = 0
	return true, suppressed
}

// MessageLogLimiter is a LogLimiter per distinct message (a connection that
// fails the same way, or alternates between a few ways, every few seconds
// writes each message once per Every, not once per failure). It remembers at
// most 64 messages, which may carry addresses; past that a new message is
// let through unlimited. It is safe for concurrent use.
type MessageLogLimiter struct {
	Every time.Duration // 0: 5 s

	mu   sync.Mutex
	seen map[string]*LogLimiter
}

// maxLimitedMessages bounds the messages a MessageLogLimiter remembers.
const maxLimitedMessages = 64

// Allow reports whether msg may be written at now (Now()), and how many times
// it was held back since it last was.
func (m *MessageLogLimiter) Allow(msg string, now int64) (ok bool, suppressed int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.seen[msg]; l != nil {
		return l.Allow(now)
	}
	if m.seen == nil {
		m.seen = map[string]*LogLimiter{}
	}
	if len(m.seen) >= maxLimitedMessages {
		for k, l := range m.seen {
			if l.expired(now) {
				delete(m.seen, k)
			}
		}
	}
	if len(m.seen) >= maxLimitedMessages {
		return true, 0
	}
	l := &LogLimiter{Every: m.Every}
	m.seen[msg] = l
	return l.Allow(now)
}

func (l *LogLimiter) every() time.Duration {
	if l.Every <= 0 {
		return 5 * time.Second
	}
	return l.Every
}

// expired reports whether the limiter's window has ended, so that it may be
// forgotten (with the count of lines it held back).
func (l *LogLimiter) expired(now int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now-l.start >= int64(l.every())
}
