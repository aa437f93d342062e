package opcua

import (
	"context"
	"fmt"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/engine"
)

// defaultMaxNodesPerRead is used when the server states no limit.
const defaultMaxNodesPerRead = 1000

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
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		start := time.Now()
		for _, ch := range chunks {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			t0 := time.Now()
			res, err := c.Read(rctx, ch.req)
			cancel()
			if err != nil {
				return true, fmt.Errorf("read: %w", err)
			}
			now := time.Now()
			s.m.readSeconds.Observe(now.Sub(t0).Seconds())
			if res.ResponseHeader != nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
				return true, fmt.Errorf("read: %w", res.ResponseHeader.ServiceResult)
			}
			if len(res.Results) != len(ch.tags) {
				return true, fmt.Errorf("read: asked for %d nodes, got %d results", len(ch.tags), len(res.Results))
			}
			pts := engine.GetPoints(len(ch.tags))
			for i, dv := range res.Results {
				pts = s.appendValue(pts, ch.tags[i], dv, now)
			}
			s.m.points.Add(float64(len(pts)))
			if len(pts) == 0 {
				engine.PutPoints(pts)
				continue
			}
			if err := out.Emit(ctx, pts, nil); err != nil {
				return true, err
			}
		}
		if el := time.Since(start); el > s.cfg.Interval {
			s.m.skipped.Add(float64(el / s.cfg.Interval))
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-tick.C:
		}
	}
}
