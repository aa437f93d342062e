package opcua

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/engine"
)

// createChunk is how many monitored items one CreateMonitoredItems request
// carries (small enough for servers that do not accept chunked requests).
const createChunk = 500

// subscribe creates subscriptions of at most max_items_per_subscription
// items, checks every item's result, and turns data change notifications
// into points until the connection drops.
func (s *Source) subscribe(ctx context.Context, c *gopcua.Client, tags []*tagState, out engine.Output) (bool, error) {
	// Notifications are consumed from the start: the library's publish loop
	// blocks until its notification is taken, and while it is blocked it
	// cannot take part in creating further subscriptions.
	notifs := make(chan *gopcua.PublishNotificationData, 4)
	var wg sync.WaitGroup
	defer wg.Wait()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); errc <- s.consume(cctx, notifs, tags, out) }()

	failed := 0
	for start := 0; start < len(tags); start += s.cfg.MaxItemsPerSub {
		end := min(start+s.cfg.MaxItemsPerSub, len(tags))
		rctx, rcancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		sub, err := c.Subscribe(rctx, &gopcua.SubscriptionParameters{Interval: s.cfg.Interval}, notifs)
		rcancel()
		if err != nil {
			return false, fmt.Errorf("create subscription: %w", err)
		}
		for cs := start; cs < end; cs += createChunk {
			ce := min(cs+createChunk, end)
			n, err := s.monitor(ctx, sub, tags, cs, ce)
			if err != nil {
				return false, err
			}
			failed += n
		}
	}
	if failed == len(tags) {
		return false, errors.New("the server refused every monitored item")
	}
	s.setConnected(len(tags) - failed)
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errc:
			return true, err
		case <-check.C:
			if st := c.State(); st != gopcua.Connected {
				return true, fmt.Errorf("connection %s", st)
			}
		}
	}
}

// consume turns data change notifications into points until ctx ends or a
// notification reports an error.
func (s *Source) consume(ctx context.Context, notifs <-chan *gopcua.PublishNotificationData, tags []*tagState, out engine.Output) error {
	for {
		var n *gopcua.PublishNotificationData
		select {
		case <-ctx.Done():
			return nil
		case n = <-notifs:
		}
		if n.Error != nil {
			return fmt.Errorf("subscription: %w", n.Error)
		}
		dc, ok := n.Value.(*ua.DataChangeNotification)
		if !ok || len(dc.MonitoredItems) == 0 {
			continue
		}
		now := time.Now()
		pts := engine.GetPoints(len(dc.MonitoredItems))
		for _, it := range dc.MonitoredItems {
			h := int(it.ClientHandle)
			if h < 0 || h >= len(tags) {
				continue
			}
			if it.Value != nil && uacommon.DataValueOverflow(it.Value.Status) {
				s.m.dropped.Inc()
			}
			pts = s.appendValue(pts, tags[h], it.Value, now)
		}
		s.m.points.Add(float64(len(pts)))
		if len(pts) == 0 {
			engine.PutPoints(pts)
			continue
		}
		if err := out.Emit(ctx, pts, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// filterRefused are the statuses after which an item is created again
// without a server-side filter (the client-side deadband still applies).
var filterRefused = []ua.StatusCode{ua.StatusBadFilterNotAllowed, ua.StatusBadMonitoredItemFilterUnsupported, ua.StatusBadDeadbandFilterInvalid}

func (s *Source) itemRequest(t *tagState, handle int, withFilter bool) *ua.MonitoredItemCreateRequest {
	sampling := t.sampling
	if sampling <= 0 {
		sampling = s.cfg.Interval
	}
	req := &ua.MonitoredItemCreateRequest{
		ItemToMonitor:  &ua.ReadValueID{NodeID: t.id, AttributeID: ua.AttributeIDValue, DataEncoding: &ua.QualifiedName{}},
		MonitoringMode: ua.MonitoringModeReporting,
		RequestedParameters: &ua.MonitoringParameters{
			ClientHandle:     uint32(handle),
			SamplingInterval: float64(sampling) / float64(time.Millisecond),
			Filter:           ua.NewExtensionObject(nil),
			QueueSize:        uint32(t.queue),
			DiscardOldest:    s.cfg.DiscardOldest,
		},
	}
	if withFilter && t.dbType == "absolute" && t.deadband > 0 {
		req.RequestedParameters.Filter = ua.NewExtensionObject(&ua.DataChangeFilter{
			Trigger:       ua.DataChangeTriggerStatusValue,
			DeadbandType:  uint32(ua.DeadbandTypeAbsolute),
			DeadbandValue: t.deadband,
		})
	}
	return req
}

// monitor creates items for tags[from:to]; it returns how many the server refused.
func (s *Source) monitor(ctx context.Context, sub *gopcua.Subscription, tags []*tagState, from, to int) (int, error) {
	reqs := make([]*ua.MonitoredItemCreateRequest, 0, to-from)
	for h := from; h < to; h++ {
		reqs = append(reqs, s.itemRequest(tags[h], h, true))
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	res, err := sub.Monitor(rctx, ua.TimestampsToReturnBoth, reqs...)
	if err != nil {
		return 0, fmt.Errorf("create monitored items: %w", err)
	}
	if res.ResponseHeader != nil && res.ResponseHeader.ServiceResult != ua.StatusOK {
		return 0, fmt.Errorf("create monitored items: %w", res.ResponseHeader.ServiceResult)
	}
	if len(res.Results) != len(reqs) {
		return 0, fmt.Errorf("create monitored items: asked for %d, got %d results", len(reqs), len(res.Results))
	}
	var retry []*ua.MonitoredItemCreateRequest
	failed := 0
	for i, r := range res.Results {
		t := tags[from+i]
		switch {
		case r.StatusCode == ua.StatusOK:
		case isOneOf(r.StatusCode, filterRefused):
			retry = append(retry, s.itemRequest(t, from+i, false))
		default:
			failed++
			s.m.badItems.Inc()
			s.log.Warn("server refused monitored item", "node", t.id.String(), "tag", t.tag, "status", r.StatusCode.Error())
		}
	}
	if len(retry) > 0 {
		res, err := sub.Monitor(rctx, ua.TimestampsToReturnBoth, retry...)
		if err != nil {
			return 0, fmt.Errorf("create monitored items without filter: %w", err)
		}
		for i, r := range res.Results {
			if r.StatusCode != ua.StatusOK {
				failed++
				s.m.badItems.Inc()
				s.log.Warn("server refused monitored item", "node", retry[i].ItemToMonitor.NodeID.String(), "status", r.StatusCode.Error())
			}
		}
	}
	return failed, nil
}

func isOneOf(c ua.StatusCode, set []ua.StatusCode) bool {
	for _, x := range set {
		if c == x {
			return true
		}
	}
	return false
}
