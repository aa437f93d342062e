package engine

import (
	"math/bits"
	"sync"
	"time"
)

// Latency histograms use log-linear buckets: 8 per power of two, so a
// quantile is exact to within 12.5 %. One histogram is updated under one lock
// per batch, which keeps per-point cost to a few nanoseconds.
const (
	histSub     = 3 // bits of mantissa: 8 buckets per doubling
	histBuckets = 64 << histSub
	slotWidth   = 10 * time.Second
	slotCount   = 6 // the recent window: one minute
)

type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds
	max    int64
}

func bucketOf(d int64) int {
	if d <= 0 {
		return 0
	}
	u := uint64(d)
	if u < 1<<histSub {
		return int(u)
	}
	e := bits.Len64(u) // >= histSub+1
	mant := (u >> (e - 1 - histSub)) & (1<<histSub - 1)
	return (e-histSub)<<histSub + int(mant)
}

// bucketUpper is the exclusive upper bound, in ns, of bucket i.
func bucketUpper(i int) int64 {
	if i < 1<<histSub {
		return int64(i) + 1
	}
	e := i>>histSub + histSub
	mant := i & (1<<histSub - 1)
	return int64((1<<histSub + mant + 1)) << (e - 1 - histSub)
}

func (h *hist) add(d int64) {
	h.counts[bucketOf(d)]++
	h.n++
	h.sum += float64(d)
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i := range h.counts {
		h.counts[i] += o.counts[i]
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketUpper(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// latency is a cumulative histogram plus a sliding window of recent slots.
type latency struct {
	mu    sync.Mutex
	total hist
	slots [slotCount]hist
	epoch [slotCount]int64 // which slotWidth period each slot holds
}

func (l *latency) slot(now int64) *hist {
	p := now / int64(slotWidth)
	i := int(p % slotCount)
	if l.epoch[i] != p {
		l.slots[i] = hist{}
		l.epoch[i] = p
	}
	return &l.slots[i]
}

// observeTS records now − source timestamp for every point that has one.
func (l *latency) observeTS(points []Point, wallNow int64) {
	l.mu.Lock()
	s := l.slot(wallNow)
	for i := range points {
		if ts := points[i].TS; ts != 0 {
			d := wallNow - ts
			l.total.add(d)
			s.add(d)
		}
	}
	l.mu.Unlock()
}

// observeIngest records now − ingest (engine clock) for every point.
func (l *latency) observeIngest(points []Point, monoNow int64) {
	l.mu.Lock()
	s := l.slot(WallFromMono(monoNow))
	for i := range points {
		d := monoNow - points[i].Ingest
		l.total.add(d)
		s.add(d)
	}
	l.mu.Unlock()
}

// recent merges the slots of the last minute.
func (l *latency) recent() hist {
	var out hist
	now := time.Now().UnixNano() / int64(slotWidth)
	l.mu.Lock()
	for i := range l.slots {
		if now-l.epoch[i] < slotCount {
			out.merge(&l.slots[i])
		}
	}
	l.mu.Unlock()
	return out
}

func (l *latency) snapshot() hist {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// rateMeter turns a counter into a smoothed per-second rate.
type rateMeter struct {
	mu    sync.Mutex
	last  int64
	at    time.Time
	value float64
}

func (r *rateMeter) sample(count int64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() {
		dt := now.Sub(r.at).Seconds()
		if dt > 0 {
			inst := float64(count-r.last) / dt
			if r.value == 0 {
				r.value = inst
			} else {
				r.value = 0.5*r.value + 0.5*inst
			}
		}
	}
	r.last, r.at = count, now
}

func (r *rateMeter) get() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.value
}
