package opcua

import (
	"context"
	"fmt"
	"sync"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/engine"
)

// defaultMaxNodesPerRead is used when the server states no limit.
const defaultMaxNodesPerRead = 1000

// readsInFlight is how many Read requests a poll cycle keeps outstanding.
const readsInFlight = 4

type readChunk struct {
	req  *ua.ReadRequest
	tags []*tagState
}

// poll reads every tag each interval, in requests of at most the server's
// MaxNodesPerRead nodes. A cycle that overruns skips the ticks it missed,
// and counts them.
func (s *Source) poll(ctx context.Context, c *gopcua.Client, tags []*tagState, out engine.Output) (bool, error) {
	per := s.cfg.MaxNodesPerRead
	if per == 0 {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		n, err := uacommon.MaxNodesPerRead(rctx, c)
		cancel()
		if err != nil {
			return false, fmt.Errorf("read OperationLimits: %w", err)
		}
		per = n
		if per == 0 {
			per = defaultMaxNodesPerRead
		}
	}
	var chunks []readChunk
	for i := 0; i < len(tags); i += per {
		part := tags[i:min(i+per, len(tags))]
		req := &ua.ReadRequest{TimestampsToReturn: ua.TimestampsToReturnBoth, NodesToRead: make([]*ua.ReadValueID, len(part))}
		for j, t := range part {
			req.NodesToRead[j] = &ua.ReadValueID{NodeID: t.id, AttributeID: ua.AttributeIDValue}
		}
		chunks = append(chunks, readChunk{req: req, tags: part})
	}
	s.setConnected(len(tags))
	results := make(chan readResult, len(chunks))
	due := time.Now()
	t := time.NewTimer(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.pollOnce(ctx, c, chunks, results, out); err != nil {
			return true, err
		}
		var missed int64
		due, missed = engine.NextDue(due, s.cfg.Interval, time.Now())
		s.m.skipped.Add(float64(missed))
		t.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-t.C:
		}
	}
}

type readResult struct {
	chunk int
	res   *ua.ReadResponse
	at    time.Time
	err   error
}

// pollOnce reads every chunk, up to readsInFlight requests at a time, and
// emits each answer as it arrives.
func (s *Source) pollOnce(ctx context.Context, c *gopcua.Client, chunks []readChunk, results chan readResult, out engine.Output) error {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, readsInFlight)
	launched := 0
	launch := func() {
		i := launched
		launched++
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			res, err := c.Read(rctx, chunks[i].req)
			now := time.Now()
			s.m.readSeconds.Observe(now.Sub(t0).Seconds())
			<-sem
			results <- readResult{chunk: i, res: res, at: now, err: err}
		}()
	}
	for launched < len(chunks) && launched < readsInFlight {
		launch()
	}
	var firstErr error
	for done := 0; done < launched; done++ { // launched grows as answers come in
		r := <-results
		if launched < len(chunks) && firstErr == nil {
			launch()
		}
		if firstErr != nil {
			continue
		}
		if err := s.emitRead(ctx, chunks[r.chunk], r, out); err != nil {
			firstErr = err
			cancel()
		}
	}
	return firstErr
}

func (s *Source) emitRead(ctx context.Context, ch readChunk, r readResult, out engine.Output) error {
	if r.err != nil {
		return fmt.Errorf("read: %w", r.err)
	}
	res := r.res
	if res.ResponseHeader != nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		return fmt.Errorf("read: %w", res.ResponseHeader.ServiceResult)
	}
	if len(res.Results) != len(ch.tags) {
		return fmt.Errorf("read: asked for %d nodes, got %d results", len(ch.tags), len(res.Results))
	}
	pts := engine.GetPoints(len(ch.tags))
	for i, dv := range res.Results {
		pts = s.appendValue(pts, ch.tags[i], dv, r.at)
	}
	s.m.points.Add(float64(len(pts)))
	if len(pts) == 0 {
		engine.PutPoints(pts)
		return nil
	}
	return out.Emit(ctx, pts, nil)
}
