package opcua

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/id"
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
//
// gopcua delivers notifications from its single publish loop, and that loop
// must keep turning: while it waits for a notification to be taken it sends
// no publish request, and Client.Subscribe (which has no context) waits for
// it too. So a receiver takes notifications while this goroutine creates
// the subscriptions, and emits them with a context that gives up after one
// publishing interval: when the engine stays full that long, the values are
// dropped and counted (reason backpressure, by the engine), the publish loop
// slows to that pace, the server's queues fill (their overflow is counted
// too), and the pipeline's backpressure reaches the server.
func (s *Source) subscribe(ctx context.Context, c *gopcua.Client, tags []*tagState, out engine.Output) (bool, error) {
	notifs := make(chan *gopcua.PublishNotificationData, 16)
	stop := make(chan struct{})
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	defer wg.Wait()
	// The receiver drains notifs until stop, even after ctx ends: a
	// Client.Subscribe still in flight returns only once the publish loop
	// has handed over its notification.
	defer close(stop)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); s.receive(cctx, stop, notifs, out, tags, errc) }()

	failed := 0
	var silence time.Duration
	for start := 0; start < len(tags); start += s.cfg.MaxItemsPerSub {
		end := min(start+s.cfg.MaxItemsPerSub, len(tags))
		rctx, rcancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		sub, err := c.Subscribe(rctx, s.subParams(), notifs)
		rcancel()
		if err != nil {
			return false, fmt.Errorf("create subscription: %w", err)
		}
		// The server owes a keep-alive after this long without data.
		silence = max(silence, time.Duration(sub.RevisedMaxKeepAliveCount)*sub.RevisedPublishingInterval)
		for cs := start; cs < end; cs += createChunk {
			ce := min(cs+createChunk, end)
			n, err := s.monitor(ctx, sub, tags, cs, ce)
			if err != nil {
				return false, err
			}
			failed += n
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	if failed == len(tags) {
		return false, errors.New("the server refused every monitored item")
	}
	s.setConnected(len(tags) - failed)
	if silence <= 0 {
		silence = time.Duration(s.cfg.KeepAliveCount) * s.cfg.Interval
	}
	s.heard.Store(time.Now().UnixNano())
	check := time.NewTicker(min(time.Second, max(s.cfg.Interval, 10*time.Millisecond)))
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
			if err := s.watchdog(ctx, c, silence); err != nil {
				return true, err
			}
		}
	}
}

// subParams asks for the configured keep-alive and lifetime rather than
// gopcua's defaults (a keep-alive only every 3000 intervals).
func (s *Source) subParams() *gopcua.SubscriptionParameters {
	life := s.cfg.LifetimeCount
	if life == 0 {
		// A short lifetime would let the server delete a subscription while
		// a busy client is still creating the others: at least a minute.
		life = max(3*s.cfg.KeepAliveCount, uint32(min(time.Minute/s.cfg.Interval+1, 1<<20)))
	}
	return &gopcua.SubscriptionParameters{Interval: s.cfg.Interval, MaxKeepAliveCount: s.cfg.KeepAliveCount, LifetimeCount: life}
}

// watchdog notices a server that stopped answering while its TCP connection
// stays open (a frozen PLC, a cable pulled behind a switch): gopcua retries
// timed-out publish requests for ever and does not pass keep-alives on, so
// once nothing was received for the keep-alive period the source reads the
// server state; no answer within watchdog_timeout ends the session.
func (s *Source) watchdog(ctx context.Context, c *gopcua.Client, silence time.Duration) error {
	quiet := time.Since(time.Unix(0, s.heard.Load()))
	if quiet < silence {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.WatchdogTimeout)
	defer cancel()
	_, err := c.Read(rctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{
		NodeID: ua.NewNumericNodeID(0, id.Server_ServerStatus_State), AttributeID: ua.AttributeIDValue}}})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var sc ua.StatusCode
	if errors.As(err, &sc) && !isOneOf(sc, deadStatus) {
		err = nil // a refusal is an answer: the server is alive
	}
	if err != nil {
		s.m.watchdog.Inc()
		return fmt.Errorf("%w: nothing received for %s (keep-alive due every %s) and no answer to a Read within watchdog_timeout %s: %w",
			errHung, quiet.Round(time.Millisecond), silence, s.cfg.WatchdogTimeout, err)
	}
	s.heard.Store(time.Now().UnixNano())
	return nil
}

// receive turns data change notifications into point batches and emits
// them. It takes every notification gopcua offers until stop, waiting at
// most one publishing interval for the engine to take each; what it does not
// take in that time the engine counts as dropped (backpressure). After ctx
// ends, or a notification or an Emit reports an error, it only drains.
func (s *Source) receive(ctx context.Context, stop <-chan struct{}, notifs <-chan *gopcua.PublishNotificationData, out engine.Output, tags []*tagState, errc chan<- error) {
	draining := false
	for {
		var n *gopcua.PublishNotificationData
		select {
		case <-stop:
			return
		case n = <-notifs:
		}
		s.heard.Store(time.Now().UnixNano())
		if draining || ctx.Err() != nil {
			continue
		}
		if n.Error != nil {
			errc <- fmt.Errorf("subscription: %w", n.Error)
			draining = true
			continue
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
		np := len(pts)
		s.m.points.Add(float64(np))
		if np == 0 {
			engine.PutPoints(pts)
			continue
		}
		ectx, cancel := context.WithTimeoutCause(ctx, s.cfg.Interval, engine.ErrBackpressure)
		err := out.Emit(ectx, pts, nil)
		backpressure := err != nil && ctx.Err() == nil && errors.Is(context.Cause(ectx), engine.ErrBackpressure)
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
			// Handed on, or shut down (Emit counted what it did not take).
			if err == nil {
				s.live.Store(true)
			}
		case backpressure:
			// The pipeline stayed full for a whole publishing interval:
			// the engine counted these values as dropped. Their tags
			// report the next value whatever the deadband, since the last
			// reported one never left.
			s.m.lost.Add(float64(np))
			for _, it := range dc.MonitoredItems {
				if h := int(it.ClientHandle); h >= 0 && h < len(tags) {
					tags[h].reported = false
				}
			}
		default:
			errc <- err
			draining = true
		}
	}
}

// errHung marks a session ended by the watchdog.
var errHung = errors.New("server silent")

// deadStatus are the Read results that mean no answer came.
var deadStatus = []ua.StatusCode{ua.StatusBadTimeout, ua.StatusBadRequestTimeout, ua.StatusBadServerNotConnected,
	ua.StatusBadConnectionClosed, ua.StatusBadSecureChannelClosed, ua.StatusBadNotConnected}

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
