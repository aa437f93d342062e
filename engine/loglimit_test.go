package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The zero value lets one line through per 5 s, the pace of the engine's own
// warnings and the Cassandra driver's.
func TestLogLimiterZeroValueOnePerFiveSeconds(t *testing.T) {
	var l LogLimiter
	now := Now()
	logged := 0
	for i := range 1000 { // 10 s at 10 ms
		if ok, _ := l.Allow(now + int64(time.Duration(i)*10*time.Millisecond)); ok {
			logged++
		}
	}
	if logged != 2 {
		t.Fatalf("%d lines in 10 s, want 2", logged)
	}
	ok, suppressed := l.Allow(now + int64(10*time.Second))
	if !ok || suppressed != 499 {
		t.Fatalf("after the window: ok=%v suppressed=%d, want true 499", ok, suppressed)
	}
}

// A burst limiter (the sources' rejected payloads) lets Burst lines through
// per window and reports what it held back with the next line.
func TestLogLimiterBurst(t *testing.T) {
	l := LogLimiter{Every: 10 * time.Second, Burst: 20}
	now := Now()
	logged := 0
	for i := range 100 {
		if ok, suppressed := l.Allow(now + int64(time.Duration(i)*time.Millisecond)); ok {
			logged++
			if suppressed != 0 {
				t.Fatalf("line %d: %d suppressed within the first window", i, suppressed)
			}
		}
	}
	if logged != 20 {
		t.Fatalf("%d lines in one window, want 20", logged)
	}
	if ok, suppressed := l.Allow(now + int64(9*time.Second)); ok || suppressed != 0 {
		t.Fatalf("within the window: ok=%v suppressed=%d", ok, suppressed)
	}
	if ok, suppressed := l.Allow(now + int64(10*time.Second)); !ok || suppressed != 81 {
		t.Fatalf("next window: ok=%v suppressed=%d, want true 81", ok, suppressed)
	}
}

func TestMessageLogLimiterPerMessage(t *testing.T) {
	l := MessageLogLimiter{Every: time.Minute}
	now := Now()
	logged := 0
	for i := 0; i < 1000; i++ {
		for _, msg := range []string{"connection lost: EOF", "subscribe: context deadline exceeded"} {
			if ok, _ := l.Allow(msg, now+int64(time.Duration(i)*10*time.Millisecond)); ok {
				logged++
			}
		}
	}
	if logged != 2 {
		t.Fatalf("%d lines logged in 10s, want one per message", logged)
	}
	ok, repeats := l.Allow("connection lost: EOF", now+int64(2*time.Minute))
	if !ok || repeats != 999 {
		t.Fatalf("after the window: ok=%v repeats=%d, want true 999", ok, repeats)
	}
}

// Messages may carry addresses: the limiter remembers a bounded number,
// forgets those whose window ended, and lets the rest through.
func TestMessageLogLimiterBounded(t *testing.T) {
	var l MessageLogLimiter
	now := Now()
	for i := range 200 {
		if ok, _ := l.Allow(fmt.Sprintf("dial 10.0.0.%d: refused", i), now); !ok {
			t.Fatalf("new message %d held back", i)
		}
	}
	if len(l.seen) != maxLimitedMessages {
		t.Fatalf("remembers %d messages, want %d", len(l.seen), maxLimitedMessages)
	}
	if ok, _ := l.Allow("dial 10.0.0.1: refused", now); ok {
		t.Fatal("a remembered message was let through again within its window")
	}
	if ok, _ := l.Allow("new", now+int64(time.Minute)); !ok || len(l.seen) != 1 {
		t.Fatalf("after the window: ok=%v, %d remembered, want the expired ones forgotten", ok, len(l.seen))
	}
}

// Under concurrent callers every line is either let through or counted
// with a later one that is.
func TestLogLimiterConcurrentCountsAddUp(t *testing.T) {
	l := LogLimiter{Every: time.Millisecond, Burst: 3}
	const workers, calls = 4, 20000
	var wg sync.WaitGroup
	var allowed, reported atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if ok, n := l.Allow(Now()); ok {
					allowed.Add(1)
					reported.Add(int64(n))
				}
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * time.Millisecond) // past the last window: the next line reports the rest
	ok, n := l.Allow(Now())
	if !ok {
		t.Fatal("a line after the window was held back")
	}
	if got := allowed.Load() + reported.Load() + int64(n); got != workers*calls {
		t.Fatalf("%d let through + %d reported held back = %d, want %d", allowed.Load(), reported.Load()+int64(n), got, workers*calls)
	}
}

// The engine asks for every rejected point of a batch; a held-back line must
// stay cheap (time.Now included, as at the call sites).
func BenchmarkLogLimiterHeldBack(b *testing.B) {
	var l LogLimiter
	l.Allow(Now())
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(Now())
	}
}
