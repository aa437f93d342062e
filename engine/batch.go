package engine

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Batch is a slice of points travelling through the pipeline together with
// the acknowledgement handle of the source data it came from.
type Batch struct {
	Points []Point
	ack    *ack
}

// ack merges the outcomes of every copy of a batch after fan-out (and of its
// dead letters): done runs once, when the last holder has acknowledged, with
// the outcome that decides what the source may do — errored (any other
// error: some copy was not delivered, the data must come again) over
// rejected (an error wrapping ErrRejected: settled for good, commit) over
// delivered (nil). Errored wins over rejected, unlike Vector's finalizers'
// order, because sources commit a rejected batch: a copy cut off at
// shutdown beside a reject elsewhere must not be committed and lost.
type ack struct {
	refs atomic.Int32
	err  atomic.Pointer[error]
	done func(error)
}

// NewBatch wraps points with a done callback (which may be nil).
func NewBatch(points []Point, done func(error)) Batch {
	if done == nil {
		return Batch{Points: points}
	}
	a := &ack{done: done}
	a.refs.Store(1)
	return Batch{Points: points, ack: a}
}

// retain adds n holders of the same source data (fan-out).
func (b Batch) retain(n int) {
	if b.ack != nil && n > 0 {
		b.ack.refs.Add(int32(n))
	}
}

// Ack reports that this holder is finished with the batch: nil when the points
// were taken (delivered, durably buffered, or dropped on purpose), an error when
// they were not. The point slice is returned to the pool; do not use it after.
func (b Batch) Ack(err error) {
	if a := b.ack; a != nil {
		a.settle(err)
	}
	PutPoints(b.Points)
}

func (a *ack) settle(err error) {
	if err != nil {
		if errors.Is(err, ErrRejected) {
			a.err.CompareAndSwap(nil, &err)
		} else {
			// The first error replaces nil or a reject; a later one does
			// not replace an earlier error.
			for {
				old := a.err.Load()
				if old != nil && !errors.Is(*old, ErrRejected) {
					break
				}
				if a.err.CompareAndSwap(old, &err) {
					break
				}
			}
		}
	}
	if a.refs.Add(-1) == 0 {
		var e error
		if p := a.err.Load(); p != nil {
			e = *p
		}
		a.done(e)
	}
}

// Detach returns the done callback's holder for a buffer that acknowledges
// upstream itself (a disk buffer acks once the batch is on disk) and leaves
// the batch without one.
func (b *Batch) Detach() Batch {
	up := Batch{ack: b.ack}
	b.ack = nil
	return up
}

// Pooled point slices keep steady-state allocation at zero per point.
var pointPool = sync.Pool{}

const pooledMaxCap = 1 << 16

// GetPoints returns an empty slice with at least the given capacity.
func GetPoints(capacity int) []Point {
	if v := pointPool.Get(); v != nil {
		s := *(v.(*[]Point))
		if cap(s) >= capacity {
			return s[:0]
		}
		pointPool.Put(v)
	}
	return make([]Point, 0, capacity)
}

// PutPoints returns a slice to the pool. Its contents are cleared so the pool
// does not keep strings or attribute maps alive.
func PutPoints(s []Point) {
	if cap(s) == 0 || cap(s) > pooledMaxCap {
		return
	}
	s = s[:cap(s)]
	clear(s)
	s = s[:0]
	pointPool.Put(&s)
}
