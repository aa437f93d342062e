// Package opcua is the OPC UA source: it polls nodes with the Read service or
// subscribes to them as monitored items, selects nodes by list, per-node
// blocks or browsing, maps values and status codes to points, and owns its
// reconnection (backoff with jitter, subscriptions recreated, tags marked bad
// while the server is away).
package opcua

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/prometheus/client_golang/prometheus"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/engine"
)

// Spec declares the opcua source.
var Spec = engine.SourceSpec(engine.Info{
	Type:    "opcua",
	Summary: "Reads tags from OPC UA servers (PLCs) by polling or subscription.",
	Description: "Nodes come from `nodes`, `node` blocks and `browse`. Values map to points (numbers, bool, string, " +
		"DateTime as RFC 3339; arrays exploded or as JSON); the status code gives the quality and is kept. Security: " +
		"policies None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss with Sign or SignAndEncrypt; " +
		"anonymous, username/password or X.509 users. The application certificate is created on first run in " +
		"<pki_dir>/own; server certificates must be in <pki_dir>/trusted or named by trust_server_cert (untrusted " +
		"ones are stored in rejected/). The source reconnects by itself with exponential backoff and jitter, " +
		"recreates its subscriptions, and emits every tag with quality bad (BadNotConnected) when the connection drops; " +
		"while it cannot connect its status is reconnecting with the error as last_error, cleared once connected; " +
		"in subscribe mode a watchdog notices a server that stops answering with its connection open (keepalive_count, " +
		"watchdog_timeout), and a refused user or certificate waits auth_retry before the next login. " +
		"With service.shard, a replica reads only the nodes whose asset its shard owns (explicit nodes by their asset, " +
		"browsed variables by their asset: parent object or asset_levels of them), so replicas split a plant by asset.",
	Example: `source "opcua" "line1" {
  endpoint = "opc.tcp://127.0.0.1:4840"
  mode     = "subscribe"
  interval = "500ms"
  asset    = "line1"
  nodes = {
    temperature = "ns=2;s=Asset1.Tag1"
    pressure    = "ns=2;s=Asset1.Tag2"
  }
}`,
}, New)

type metrics struct {
	connected   prometheus.Gauge
	reconnects  prometheus.Counter
	readSeconds prometheus.Histogram
	points      prometheus.Counter
	skipped     prometheus.Counter
	dropped     prometheus.Counter
	lost        prometheus.Counter
	nodes       prometheus.Gauge
	badItems    prometheus.Counter
	watchdog    prometheus.Counter
}

// New validates the config and builds the source.
func New(c *Config, env *engine.Env) (engine.Source, error) {
	specs, err := c.validate()
	if err != nil {
		return nil, err
	}
	policy, _ := uacommon.PolicyURI(c.SecurityPolicy)
	mode, _ := uacommon.Mode(c.SecurityMode)
	m := metrics{
		connected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_opcua_connected", Help: "1 while the OPC UA session is up."}),
		reconnects:  prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_reconnects_total", Help: "Connections lost or failed, each followed by a reconnection attempt."}),
		readSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flowd_opcua_read_seconds", Help: "Duration of one Read request (poll mode).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		points:      prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_points_total", Help: "Points read from the server."}),
		skipped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_skipped_polls_total", Help: "Poll cycles skipped because the previous one overran the interval."}),
		dropped:     prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_dropped_notifications_total", Help: "Values the server discarded from a full monitored item queue (overflow bit)."}),
		lost:        prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_lost_notifications_total", Help: "Subscribed values received while the pipeline stayed full for a whole publishing interval, and so not emitted (also counted in flowd_points_dropped_total, reason backpressure)."}),
		nodes:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "flowd_opcua_nodes", Help: "Nodes read or monitored in the current session."}),
		badItems:    prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_failed_items_total", Help: "Monitored items the server refused."}),
		watchdog:    prometheus.NewCounter(prometheus.CounterOpts{Name: "flowd_opcua_watchdog_timeouts_total", Help: "Subscribe sessions ended because the server sent nothing for the keep-alive period and did not answer the probe Read within watchdog_timeout (a hung server)."}),
	}
	env.MustRegister(m.connected, m.reconnects, m.readSeconds, m.points, m.skipped, m.dropped, m.lost, m.nodes, m.badItems, m.watchdog)
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	pki := c.PKIDir
	if pki == "" {
		pki = filepath.Join(env.DataDir, "pki", "opcua")
	}
	if c.AutoAccept {
		log.Warn("auto_accept is on: any server certificate will be trusted; use it only in a lab")
	}
	return &Source{cfg: *c, env: env, log: log, specs: specs, policy: policy, mode: mode, pki: uacommon.PKI{Dir: pki}, m: m}, nil
}

// Source is a running opcua source.
type Source struct {
	cfg    Config
	env    *engine.Env
	log    *slog.Logger
	specs  []nodeSpec
	policy string
	mode   ua.MessageSecurityMode
	pki    uacommon.PKI
	m      metrics
	known  []*tagState  // tags of the last session, marked bad when it drops
	heard  atomic.Int64 // subscribe: unix ns of the last notification or answered probe
	live   atomic.Bool  // values were emitted since the tags were last marked bad
}

// tagState is one node being read, with its client-side filter state.
type tagState struct {
	nodeSpec
	last       engine.Value
	lastQ      engine.Quality
	reported   bool
	lastSrc    int64 // newest source timestamp read (Unix ns)
	lastServer int64 // newest server timestamp read (Unix ns)
}

// Run connects, reads until ctx ends, and reconnects on its own.
func (s *Source) Run(ctx context.Context, out engine.Output) error {
	// Not connected until a session reads: a first connect can take up to
	// request_timeout (a server that does not answer), and must not look
	// healthy meanwhile.
	s.env.SetState(engine.StateStarting, nil)
	attempt := 0
	for {
		connected, err := s.session(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		s.m.connected.Set(0)
		s.m.reconnects.Inc()
		s.env.SetState(engine.StateConnecting, err)
		if connected {
			attempt = 0
			s.log.Warn("connection lost; reconnecting", "endpoint", s.cfg.Endpoint, "err", err)
		}
		// Also after a session lost while creating its subscriptions: the
		// first ones may have delivered values already.
		if connected || s.live.Load() {
			s.markBad(ctx, out)
		}
		d := engine.Backoff(s.cfg.ReconnectMin, s.cfg.ReconnectMax, attempt)
		if ae := (authError{}); errors.As(err, &ae) {
			// Retrying a refused login soon only adds failed logins.
			d = s.cfg.AuthRetry - time.Duration(rand.Int64N(int64(s.cfg.AuthRetry/10)+1))
			s.log.Error("cannot connect: "+err.Error()+"; next attempt in "+d.Round(time.Second).String()+" (auth_retry)",
				"endpoint", s.cfg.Endpoint, "attempt", attempt+1)
		} else if errors.Is(err, errDuplicate) {
			s.log.Error("cannot read: "+err.Error(), "endpoint", s.cfg.Endpoint, "attempt", attempt+1)
		} else if !connected {
			s.log.Error("cannot connect: "+err.Error(), "endpoint", s.cfg.Endpoint, "attempt", attempt+1)
		}
		attempt++
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// markBad emits every known tag with quality bad: the gap starts here.
func (s *Source) markBad(ctx context.Context, out engine.Output) {
	s.live.Store(false)
	now := time.Now().UnixNano()
	for i := 0; i < len(s.known); i += 1000 {
		chunk := s.known[i:min(i+1000, len(s.known))]
		pts := engine.GetPoints(len(chunk))
		for _, t := range chunk {
			pts = append(pts, engine.Point{Asset: t.asset, Tag: t.tag, Quality: engine.Bad, Status: uacommon.StatusBadNotConnected, TS: now})
			t.reported = false
		}
		if err := out.Emit(ctx, pts, nil); err != nil {
			return
		}
	}
}

// session runs one connection; connected reports whether it got as far as
// reading.
func (s *Source) session(ctx context.Context, out engine.Output) (connected bool, err error) {
	c, err := s.connect(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		// A hung server will not answer CloseSession: do not make the
		// tags wait for it before they are marked bad.
		d := 2 * time.Second
		if errors.Is(err, errHung) {
			d = 100 * time.Millisecond
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
		defer cancel()
		c.Close(cctx)
	}()
	tags, others, err := s.resolve(ctx, c)
	if err != nil {
		return false, err
	}
	if len(tags) == 0 && others > 0 {
		// Every asset belongs to other replicas: nothing to read, which is
		// not a failure. Idle until stopped.
		s.known = nil
		s.m.nodes.Set(0)
		s.env.SetState(engine.StateConnected, nil)
		s.log.Info("shard "+s.env.Shard.String()+" owns none of this source's assets; idle", "endpoint", s.cfg.Endpoint, "other_shards_nodes", others)
		c.Close(ctx)
		<-ctx.Done()
		return true, ctx.Err()
	}
	if len(tags) == 0 {
		return false, errors.New("no nodes to read (browse found no variable matching include/exclude)")
	}
	s.known = tags
	s.m.nodes.Set(float64(len(tags)))
	if s.cfg.Mode == "subscribe" {
		return s.subscribe(ctx, c, tags, out)
	}
	return s.poll(ctx, c, tags, out)
}

func (s *Source) setConnected(n int) {
	s.m.connected.Set(1)
	s.env.SetState(engine.StateConnected, nil)
	s.log.Info("connected", "endpoint", s.cfg.Endpoint, "mode", s.cfg.Mode, "nodes", n,
		"security", uacommon.PolicyName(s.policy)+"/"+uacommon.ModeName(s.mode))
}

// resolve turns the static node list and the browse block into tags,
// keeping only those of assets this replica's shard owns; others counts the
// nodes left to other shards.
func (s *Source) resolve(ctx context.Context, c *gopcua.Client) (tags []*tagState, others int, err error) {
	shard := s.env.Shard
	tags = make([]*tagState, 0, len(s.specs))
	// others: nodes of assets another shard reads
	for _, sp := range s.specs {
		if !shard.Owns(sp.asset) {
			others++
			continue
		}
		tags = append(tags, &tagState{nodeSpec: sp})
	}
	if b := s.cfg.Browse; b != nil {
		root, _ := ua.ParseNodeID(b.Root)
		if uacommon.IsBrowsePath(b.Root) {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			nid, err := uacommon.ResolveBrowsePath(rctx, c, b.Root)
			cancel()
			if err != nil {
				return nil, 0, err
			}
			root = nid
		}
		base := nodeSpec{asset: s.cfg.Asset, sampling: s.cfg.SamplingInterval, queue: s.cfg.QueueSize, deadband: s.cfg.Deadband, dbType: s.cfg.DeadbandType}
		// Every series has one node: two nodes under one (asset, tag)
		// would interleave their values into one series. Checked over
		// every node, whichever shard reads it, so replicas agree.
		owner := make(map[[2]string]*ua.NodeID, len(s.specs))
		for _, sp := range s.specs {
			owner[[2]string{sp.asset, sp.tag}] = sp.id
		}
		var dupErr error
		err = uacommon.Browse(ctx, c, root, b.MaxDepth, func(v uacommon.Var) {
			if dupErr != nil || !b.match(v.Path, v.Name) {
				return
			}
			sp := base
			sp.tag, sp.id = v.Name, v.NodeID
			if b.AssetFrom == "parent" {
				sp.asset = b.assetOf(v)
			}
			k := [2]string{sp.asset, sp.tag}
			if prev, dup := owner[k]; dup {
				msg := fmt.Sprintf("nodes %s and %s (%s) both make asset %q tag %q", prev, sp.id, strings.Join(v.Path, "/"), sp.asset, sp.tag)
				if b.OnDuplicate == "skip" {
					s.log.Warn(msg+"; keeping the first (browse.on_duplicate = \"skip\")", "kept", prev.String(), "skipped", sp.id.String())
					return
				}
				dupErr = fmt.Errorf("%w: %s: set browse.asset_levels (e.g. %d) so each asset names its path, or exclude one", errDuplicate, msg, max(b.AssetLevels+1, 2))
				return
			}
			owner[k] = sp.id
			if !shard.Owns(sp.asset) {
				others++
				return
			}
			tags = append(tags, &tagState{nodeSpec: sp})
		})
		if err == nil {
			err = dupErr
		}
		if err != nil {
			return nil, 0, err
		}
	}
	if shard.Enabled() {
		s.log.Info("shard "+shard.String()+": reading the nodes of the assets it owns", "nodes", len(tags), "other_shards_nodes", others)
	}
	return tags, others, nil
}

// errDuplicate marks a browse that found two nodes for one series.
var errDuplicate = errors.New("two nodes for one series")

// pass applies the client-side deadband; it also records what was reported.
func (t *tagState) pass(v engine.Value, q engine.Quality) bool {
	if t.dbType == "none" || t.dbType == "" {
		return true
	}
	ok := !t.reported || q != t.lastQ ||
		engine.Deadband{Value: t.deadband, Percent: t.dbType == "percent"}.Changed(t.last, v)
	if ok {
		t.last, t.lastQ, t.reported = v, q, true
	}
	return ok
}

// appendValue converts a data value to points (more than one for an
// exploded array).
func (s *Source) appendValue(dst []engine.Point, t *tagState, dv *ua.DataValue, now time.Time) []engine.Point {
	if dv == nil {
		return append(dst, engine.Point{Asset: t.asset, Tag: t.tag, Quality: engine.Bad, Status: uacommon.StatusBadNoValue, TS: now.UnixNano()})
	}
	status := uint32(dv.Status)
	q := engine.QualityFromStatus(status)
	ts := observedAt(t, dv, s.cfg.Timestamp, now, s.cfg.Interval)
	var v engine.Value
	if dv.Value != nil {
		x := dv.Value.Value()
		var ok bool
		if v, ok = uacommon.Scalar(x); !ok {
			elems, isArr := uacommon.Array(x)
			switch {
			case isArr && s.cfg.Arrays == "explode":
				for i, e := range elems {
					dst = append(dst, engine.Point{Asset: t.asset, Tag: t.tag + "[" + strconv.Itoa(i) + "]", Value: e, Quality: q, Status: status, TS: ts})
				}
				return dst
			case isArr:
				v = uacommon.ArrayJSON(elems)
			default:
				v = engine.String(fmt.Sprint(x))
			}
		}
	}
	if !t.pass(v, q) {
		return dst
	}
	return append(dst, engine.Point{Asset: t.asset, Tag: t.tag, Value: v, Quality: q, Status: status, TS: ts})
}

// observedAt is the point's ts. With timestamp = "source" it is the source
// timestamp of a value that changed since the tag's previous read, and
// otherwise when the value was observed. A value was already current — a
// poll of an unchanged value, the initial value of a subscription after a
// reconnect — when its source timestamp did not advance since the previous
// read, or, on the first read, is older than one interval before the receive
// time. It is then stamped with this read's server timestamp if that advanced
// since the previous read (some servers return the one of the last write),
// else with the receive time. So ack − ts measures how late the latest
// observation is, not how long ago the value last changed.
func observedAt(t *tagState, dv *ua.DataValue, pref string, now time.Time, interval time.Duration) int64 {
	ts := uacommon.Timestamp(dv, pref, now)
	if pref != "source" || dv.SourceTimestamp.IsZero() {
		return ts
	}
	src, server, recv := dv.SourceTimestamp.UnixNano(), int64(0), now.UnixNano()
	if !dv.ServerTimestamp.IsZero() {
		server = dv.ServerTimestamp.UnixNano()
	}
	first := t.lastSrc == 0
	current := src <= t.lastSrc || first && src < recv-int64(interval)
	obs := recv
	if !first && server > t.lastServer {
		obs = server
	}
	t.lastSrc, t.lastServer = max(t.lastSrc, src), max(t.lastServer, server)
	if current {
		return obs
	}
	return ts
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
