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
	release := func() {
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
			// The deadline: what is still in flight is cut off. Late
			// settles find their flight done and are ignored.
			mu.Lock()
			rest := append([]*flight(nil), *fifo...)
			mu.Unlock()
			for _, f := range rest {
				if !f.done {
					n.cutOff(f)
				}
			}
			release()
			return
		}
		f := r.f
		if f.done {
			continue
		}
		err := r.err
		if err != nil {
			var we *WriteError
			if errors.As(err, &we) && (len(we.rejected) > 0 || len(we.retry) > 0) {
				var rejected bool
				f.pts, rejected = n.settle(f.pts, we, f.b.ack)
				if rejected {
					f.outcome = errRejectedBy(n.id)
				}
				err = nil
				if len(f.pts) > 0 {
					if err = we.Err; err == nil {
						err = errors.New("points to retry")
					}
				}
			}
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
			release()
			continue
		}
		failing = true
		n.setState(StateFailing, err)
		if n.logAllowed() {
			n.p.log.Error("write failed; retrying", "component", n.id, "points", len(f.pts), "err", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.bo.wait(ctx) {
				start(f)
			}
			// On ctx's end the settler cuts the flight off itself.
		}()
	}
}
