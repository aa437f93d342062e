package engine

import (
	"sync"
	"time"
)

// LogLimiter keeps a repeating log line from flooding the log: it lets Burst
// lines through per Every and counts the ones it holds back, so the next line
// let through can say how many were not written. The zero value lets one
// line through per 5 s. It is safe for concurrent use.
type LogLimiter struct {
	Every time.Duration // 0: 5 s
	Burst int           // lines per Every; 0: 1

	mu         sync.Mutex
	start      time.Time // of the current window
	n          int       // lines let through in it
	suppressed int       // lines held back since the last one let through
}

// Allow reports whether a line may be written at now, and how many were held
// back since the last one that was.
func (l *LogLimiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || now.Sub(l.start) >= l.every() {
		l.start, l.n = now, 0
	}
	if l.n >= max(l.Burst, 1) {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
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

// Allow reports whether msg may be written at now, and how many times it was
// held back since it last was.
func (m *MessageLogLimiter) Allow(msg string, now time.Time) (ok bool, suppressed int) {
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
func (l *LogLimiter) expired(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return now.Sub(l.start) >= l.every()
}
