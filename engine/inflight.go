package engine

import (
	"context"
	"errors"
	"sync"
)

// flight is one batch an AsyncSink is writing.
type flight struct {
	b       Batch
	ingest  int64   // of its first point
	pts     []Point // still to be settled
	outcome error   // nil, or rejected
	done    bool
	bo      backoff
}

type settled struct {
	f   *flight
	err error
}

// runAsync keeps up to max writes of an AsyncSink in flight. One goroutine
// (this one) takes batches from the buffer and starts their writes; the
// settler applies the outcomes as they come, retries what must be retried
// after a backoff (without holding back the other writes), and acknowledges
// batches upstream in the order they were taken, releasing one slot each.
func (n *node) runAsync(ctx context.Context, as AsyncSink, max int) {
	slots := make(chan struct{}, max)
	results := make(chan settled, max) // one pending settle per flight: never blocks
	var mu sync.Mutex
	var fifo []*flight
	popped := make(chan struct{})
	var wg sync.WaitGroup // retry timers
	settlerDone := make(chan struct{})
	start := func(f *flight) {
		as.WriteAsync(ctx, f.pts, func(err error) {
			// Never block the sink's goroutine (a client's promise): once
			// the settler has stopped, a late outcome is not wanted.
			select {
			case results <- settled{f, err}:
			case <-settlerDone:
			}
		})
	}

	go func() {
		defer close(settlerDone)
		n.settleAsync(ctx, results, &mu, &fifo, slots, popped, start, &wg)
	}()

	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		b, ok := n.buf.Pop(ctx)
		if !ok {
			<-slots
			break
		}
		b = n.coalesce(b)
		f := &flight{b: b, pts: b.Points}
		if len(b.Points) > 0 {
			f.ingest = b.Points[0].Ingest
		}
		mu.Lock()
		fifo = append(fifo, f)
		if len(fifo) == 1 {
			n.writing.Store(f.ingest)
		}
		mu.Unlock()
		start(f)
	}
	close(popped)
	<-settlerDone
	wg.Wait()
	// A flight started as the deadline passed, after the settler had cut
	// off the others, is cut off here.
	mu.Lock()
	rest := fifo
	fifo = nil
	mu.Unlock()
	for _, f := range rest {
		if !f.done {
			n.cutOff(f)
			f.b.Ack(f.outcome)
		}
	}
	n.writing.Store(0)
}

// cutOff settles a flight the deadline ended: counted as dropped, unless a
// durable buffer keeps it for the next run. Its points go to the GC, not
// the pool: the sink may read them until it settles, which may be never.
func (n *node) cutOff(f *flight) {
	if !isDurable(n.buf) {
		n.dropped(len(f.pts), "shutdown")
	}
	f.done, f.outcome = true, ErrShutdown
	f.b.Points = nil
}

// settleAsync is runAsync's settler.
func (n *node) settleAsync(ctx context.Context, results chan settled, mu *sync.Mutex, fifo *[]*flight,
	slots chan struct{}, popped chan struct{}, start func(*flight), wg *sync.WaitGroup) {
	empty := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(*fifo) == 0
	}
	closed := false
	failing := false
	for {
		if closed && empty() {
			return
		}
		var r settled
		select {
		case r = <-results:
		case <-popped:
			popped = nil
			closed = true
			continue
		case <-ctx.Done():
			n.cutOffInFlight(mu, fifo)
			n.releaseSettled(mu, fifo, slots)
			return
		}
		f := r.f
		if f.done {
			continue
		}
		err := r.err
		if err != nil {
			err = n.settleFailedWrite(f, err)
		} else {
			n.settleDelivered(f.pts)
			f.pts = f.pts[:0]
		}
		if err == nil {
			if failing {
				failing = false
				n.setState(StateConnected, nil)
			}
			f.done = true
			n.releaseSettled(mu, fifo, slots)
			continue
		}
		failing = true
		n.setState(StateFailing, err)
		if n.logAllowed() {
			n.p.log.Error("write failed; retrying", "component", n.id, "points", len(f.pts), "err", err)
		}
		n.retryLater(ctx, f, start, wg)
	}
}

// releaseSettled acknowledges upstream, in the order they were taken, the
// settled flights at the head of the fifo, releasing one slot each. A
// settled flight behind an unsettled one waits: acks must stay in order.
func (n *node) releaseSettled(mu *sync.Mutex, fifo *[]*flight, slots chan struct{}) {
	mu.Lock()
	var ready []*flight
	for len(*fifo) > 0 && (*fifo)[0].done {
		ready = append(ready, (*fifo)[0])
		(*fifo)[0] = nil
		*fifo = (*fifo)[1:]
	}
	if len(*fifo) > 0 {
		n.writing.Store((*fifo)[0].ingest)
	} else {
		n.writing.Store(0)
	}
	mu.Unlock()
	for _, f := range ready {
		f.b.Ack(f.outcome)
		<-slots
	}
}

// cutOffInFlight is the deadline: what is still in flight is cut off. Late
// settles find their flight done and are ignored.
func (n *node) cutOffInFlight(mu *sync.Mutex, fifo *[]*flight) {
	mu.Lock()
	rest := append([]*flight(nil), *fifo...)
	mu.Unlock()
	for _, f := range rest {
		if !f.done {
			n.cutOff(f)
		}
	}
}

// settleFailedWrite applies a failed write's outcome to f: a WriteError
// naming rejected or retryable points settles the rest now. It returns the
// error to retry with, or nil when nothing is left to retry.
func (n *node) settleFailedWrite(f *flight, err error) error {
	var we *WriteError
	if !errors.As(err, &we) || (len(we.rejected) == 0 && len(we.retry) == 0) {
		return err
	}
	var rejected bool
	f.pts, rejected = n.settle(f.pts, we, f.b.ack)
	if rejected {
		f.outcome = errRejectedBy(n.id)
	}
	if len(f.pts) == 0 {
		return nil
	}
	if we.Err != nil {
		return we.Err
	}
	return errors.New("points to retry")
}

// retryLater restarts f's write after its backoff, without holding back the
// settler or the other writes. On ctx's end the settler cuts the flight off
// itself.
func (n *node) retryLater(ctx context.Context, f *flight, start func(*flight), wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if f.bo.wait(ctx) {
			start(f)
		}
	}()
}
