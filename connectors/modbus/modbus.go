// Package modbus is the Modbus TCP source: it polls registers, coils and
// discrete inputs of several devices, merging each device's tags into as
// few block reads as its limits allow, decodes 16/32/64-bit integers,
// floats, bits and strings in any byte and word order, and owns each
// device's reconnection (backoff with jitter, tags marked bad with a Modbus
// exception code while a device is away or refuses a read).
package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	mb "github.com/simonvetter/modbus"

	mbcommon "github.com/flowd/flowd/common/modbus"
	"github.com/flowd/flowd/engine"
)

// Spec declares the modbus source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "modbus",
	Summary: "Polls registers, coils and discrete inputs of Modbus TCP devices, in merged block reads.",
	Description: "Each `device` block is one Modbus TCP device (or one unit id behind a gateway) with its `tag` blocks: " +
		"holding or input registers as int16, uint16, int32, uint32, int64, uint64, float32, float64, a bit of a " +
		"register or a string; coils and discrete inputs as bool. Byte order (inside a register) and word order (of " +
		"multi-register values) are set per source, device or tag; `scale` and `offset` give value = raw × scale + " +
		"offset. A device's tags with the same interval form a group, merged into as few reads as `max_registers`, " +
		"`max_bits` and `max_gap` allow; `flowd validate --verbose` prints the reads. A poll that overruns its " +
		"interval skips the ticks it missed and counts them. A device that refuses a read (a Modbus exception) has " +
		"the tags of that read emitted with quality bad and the exception code as status; a device that cannot be " +
		"reached or does not answer has all its tags emitted once with quality bad, status 10 (gateway path " +
		"unavailable: no connection) or 11 (gateway target failed to respond: timeout), and is reconnected with " +
		"exponential backoff and jitter. With service.shard, a replica polls only the devices whose asset its " +
		"shard owns.",
	Example: `source "modbus" "meters" {
  interval = "1s"
  device "meter1" {
    endpoint = "127.0.0.1:5020"
    unit_id  = 1
    tag "voltage" {
      address = 14
      type    = "float32"
    }
    tag "energy_wh" {
      table   = "input"
      address = 6
      type    = "uint64"
    }
    tag "power_kw" {
      address = 2
      type    = "int32"
      scale   = 0.001
    }
    tag "alarm" {
      address = 0
      type    = "bool"
      bit     = 3
    }
    tag "serial" {
      address = 20
      type    = "string"
      length  = 6
    }
    tag "running" {
      table   = "coil"
      address = 0
    }
  }
}`,
}, New)

// Status codes of bad points: the Modbus exception code the device
// answered, or, when it did not answer at all, the gateway codes a Modbus
// gateway would report for the same condition.
const (
	StatusPathUnavailable = 0x0A // no connection to the device
	StatusNoResponse      = 0x0B // connected, but no answer within timeout
)

type metrics struct {
	connected   prometheus.Gauge
	reconnects  prometheus.Counter
	requests    prometheus.Counter
	exceptions  prometheus.Counter
	readSeconds prometheus.Histogram
	points      prometheus.Counter
	skipped     prometheus.Counter
}

// Source is a running modbus source.
type Source struct {
	cfg     Config
	env     *engine.Env
	log     *slog.Logger
	devs    []*device
	plans   [][]*group
	m       metrics
	nconn   atomic.Int32
	owned   int // devices this replica polls
	libLogs *slog.Logger
}

// New validates the config, plans the reads and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	devs, err := c.validate()
	if err != nil {
		return nil, err
	}
	m := metrics{
		connected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_modbus_devices_connected", Help: "Devices with an open connection."}),
		reconnects:  prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_modbus_reconnects_total", Help: "Device connections lost or failed, each followed by a reconnection attempt."}),
		requests:    prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_modbus_requests_total", Help: "Read requests sent."}),
		exceptions:  prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_modbus_exceptions_total", Help: "Read requests answered with a Modbus exception."}),
		readSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowd_modbus_read_seconds", Help: "Duration of one read request.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		points:      prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_modbus_points_total", Help: "Points read (good and bad)."}),
		skipped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_modbus_skipped_polls_total", Help: "Group polls skipped because the previous one overran the interval."}),
	}
	env.MustRegister(m.connected, m.reconnects, m.requests, m.exceptions, m.readSeconds, m.points, m.skipped)
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Source{cfg: *c, env: env, log: log, devs: devs, m: m, libLogs: log.With("lib", "modbus")}
	for _, d := range devs {
		s.plans = append(s.plans, plan(d))
		if env.Shard.Owns(d.asset) {
			s.owned++
		}
	}
	return s, nil
}

// Plan describes the reads of every device, for flowd validate --verbose.
func (s *Source) Plan() string { return describePlan(s.devs, s.plans) }

// Run polls every device this replica owns until ctx ends; each device
// reconnects on its own.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	var wg sync.WaitGroup
	for i, d := range s.devs {
		if !s.env.Shard.Owns(d.asset) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runDevice(ctx, d, s.plans[i], out)
		}()
	}
	if s.env.Shard.Enabled() {
		s.log.Info("shard "+s.env.Shard.String()+": polling the devices of the assets it owns", "devices", s.owned, "other_shards_devices", len(s.devs)-s.owned)
	}
	if s.owned == 0 {
		// every device belongs to other replicas: nothing to poll, which is
		// not the end of the source
		s.env.SetState(engine.StateConnected, nil)
		<-ctx.Done()
	}
	wg.Wait()
	return nil
}

// runDevice connects, polls and reconnects one device until ctx ends.
func (s *Source) runDevice(ctx context.Context, d *device, groups []*group, out engine.Output) {
	attempt := 0
	bad := false // the device's tags were last reported bad
	for ctx.Err() == nil {
		c, err := s.open(d)
		if err == nil {
			s.connected(d, +1)
			var answered bool
			answered, err = s.poll(ctx, c, d, groups, out)
			c.Close()
			s.connected(d, -1)
			if answered {
				// only a device that answered is back: one that takes the
				// connection and stays silent keeps its backoff and its bad
				// tags are not reported again
				attempt = 0
				bad = false
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.m.reconnects.Inc()
		s.env.SetState(engine.StateConnecting, fmt.Errorf("device %s: %w", d.name, err))
		code := uint32(StatusPathUnavailable)
		if errors.Is(err, mb.ErrRequestTimedOut) {
			code = StatusNoResponse
		}
		if attempt == 0 {
			s.log.Warn("device unreachable; reconnecting", "device", d.name, "endpoint", d.endpoint, "err", err)
		} else {
			s.log.Debug("reconnect failed", "device", d.name, "endpoint", d.endpoint, "attempt", attempt, "err", err)
		}
		if !bad {
			s.markBad(ctx, d, groups, code, out)
			bad = true
		}
		t := time.NewTimer(engine.Backoff(s.cfg.ReconnectMin, s.cfg.ReconnectMax, attempt))
		attempt++
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Source) connected(d *device, delta int32) {
	n := s.nconn.Add(delta)
	s.m.connected.Set(float64(n))
	if delta > 0 {
		s.log.Info("connected", "device", d.name, "endpoint", d.endpoint, "unit", d.unit)
	}
	if delta > 0 && int(n) == s.owned {
		s.env.SetState(engine.StateConnected, nil)
	}
}

func (s *Source) open(d *device) (*mb.ModbusClient, error) {
	c, err := mb.NewClient(&mb.ClientConfiguration{
		URL: "tcp://" + d.endpoint, Timeout: d.timeout,
		Logger: slog.NewLogLogger(s.libLogs.Handler(), slog.LevelDebug),
	})
	if err != nil {
		return nil, err
	}
	if err := c.SetUnitId(d.unit); err != nil {
		return nil, err
	}
	if err := c.Open(); err != nil {
		return nil, err
	}
	return c, nil
}

// markBad emits every tag of the device once with quality bad.
func (s *Source) markBad(ctx context.Context, d *device, groups []*group, code uint32, out engine.Output) {
	ts := time.Now().UnixNano()
	pts := engine.GetPoints(len(d.tags))
	for _, g := range groups {
		for _, bl := range g.blocks {
			pts = badBlock(pts, bl, code, ts)
		}
	}
	s.m.points.Add(float64(len(pts)))
	_ = out.Emit(ctx, pts, nil)
}

// poll reads each group every interval until a read fails for a reason
// other than a Modbus exception (the connection is then reopened). A group
// whose poll overruns skips the ticks it missed, and counts them. answered
// reports whether a whole group was read on this connection.
func (s *Source) poll(ctx context.Context, c *mb.ModbusClient, d *device, groups []*group, out engine.Output) (answered bool, err error) {
	due := make([]time.Time, len(groups))
	now := time.Now()
	for i := range due {
		due[i] = now
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		next := due[0]
		for _, x := range due[1:] {
			if x.Before(next) {
				next = x
			}
		}
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return answered, ctx.Err()
		case <-t.C:
		}
		for i, g := range groups {
			if time.Now().Before(due[i]) {
				continue
			}
			if err := s.pollGroup(ctx, c, d, g, out); err != nil {
				return answered, err
			}
			answered = true
			var missed int64
			due[i], missed = engine.NextDue(due[i], g.interval, time.Now())
			s.m.skipped.Add(float64(missed))
		}
	}
}

// pollGroup reads every block of a group and emits the points in one batch.
func (s *Source) pollGroup(ctx context.Context, c *mb.ModbusClient, d *device, g *group, out engine.Output) error {
	pts := engine.GetPoints(g.points)
	for i := 0; i < len(g.blocks); i++ {
		bl := g.blocks[i]
		n := len(pts)
		var err error
		pts, err = s.readBlock(c, bl, pts)
		if err != nil {
			engine.PutPoints(pts)
			return err
		}
		if len(bl.tags) > 1 && pts[n].Quality == engine.Bad && pts[n].Status == 2 {
			parts := split(bl)
			if len(parts) == 1 {
				continue // one address: nothing to split
			}
			// The device refused a merged read (illegal data address): it has
			// holes the plan spanned, or one tag's address does not exist.
			// Split the read for good and read the parts now, so one bad
			// address costs only its own tags.
			s.log.Warn("device refused a merged read (illegal data address); splitting it", "device", d.name,
				"read", fmt.Sprintf("%s %d+%d", bl.table, bl.start, bl.count), "into", len(parts))
			g.blocks = slices.Replace(g.blocks, i, i+1, parts...)
			pts = pts[:n]
			i--
		}
	}
	s.m.points.Add(float64(len(pts)))
	return out.Emit(ctx, pts, nil)
}

// readBlock sends one read and appends its tags' points: decoded values, or
// bad points with the exception code the device answered. Other errors are
// returned: the connection is no longer trusted.
func (s *Source) readBlock(c *mb.ModbusClient, bl *block, pts []engine.Point) ([]engine.Point, error) {
	t0 := time.Now()
	var raw []byte
	var bits []bool
	var err error
	switch bl.table {
	case tHolding:
		raw, err = c.ReadRawBytes(uint16(bl.start), uint16(2*bl.count), mb.HOLDING_REGISTER)
	case tInput:
		raw, err = c.ReadRawBytes(uint16(bl.start), uint16(2*bl.count), mb.INPUT_REGISTER)
	case tCoil:
		bits, err = c.ReadCoils(uint16(bl.start), uint16(bl.count))
	case tDiscrete:
		bits, err = c.ReadDiscreteInputs(uint16(bl.start), uint16(bl.count))
	}
	now := time.Now()
	s.m.requests.Inc()
	s.m.readSeconds.Observe(now.Sub(t0).Seconds())
	ts := now.UnixNano()
	if err != nil {
		if code, ok := mbcommon.ExceptionCode(err); ok {
			s.m.exceptions.Inc()
			return badBlock(pts, bl, uint32(code), ts), nil
		}
		return pts, fmt.Errorf("read %s %d+%d: %w", bl.table, bl.start, bl.count, err)
	}
	if bl.table.bits() {
		if len(bits) < bl.count {
			return pts, fmt.Errorf("read %s %d+%d: short answer", bl.table, bl.start, bl.count)
		}
		return decodeBits(pts, bl, bits, ts), nil
	}
	if len(raw) < 2*bl.count {
		return pts, fmt.Errorf("read %s %d+%d: short answer", bl.table, bl.start, bl.count)
	}
	return decodeBlock(pts, bl, raw, ts), nil
}
