package opcua

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
	"github.com/gopcua/opcua/ua"
)

// collector is an engine.Output that keeps every point.
type collector struct {
	mu  sync.Mutex
	pts []engine.Point
}

func (c *collector) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	c.mu.Lock()
	c.pts = append(c.pts, pts...)
	c.mu.Unlock()
	engine.PutPoints(pts)
	if done != nil {
		done(nil)
	}
	return nil
}

func (c *collector) snapshot() []engine.Point {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]engine.Point(nil), c.pts...)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPLC(t testing.TB, cfg simplc.Config) *simplc.PLC {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = fmt.Sprintf("opc.tcp://127.0.0.1:%d", freePort(t))
	}
	p, err := simplc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func defaults(c *Config) {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Mode, "poll")
	set(&c.DeadbandType, "none")
	set(&c.Timestamp, "source")
	set(&c.Arrays, "explode")
	set(&c.SecurityPolicy, "None")
	set(&c.SecurityMode, "None")
	set(&c.ApplicationURI, "urn:flowd:client")
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.QueueSize == 0 {
		c.QueueSize = 10
	}
	if c.MaxItemsPerSub == 0 {
		c.MaxItemsPerSub = 1000
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin, c.ReconnectMax = 100*time.Millisecond, time.Second
	}
	c.DiscardOldest = true
	if c.Browse != nil {
		if c.Browse.Root == "" {
			c.Browse.Root = "i=85"
		}
		if c.Browse.AssetFrom == "" {
			c.Browse.AssetFrom = "parent"
		}
		if c.Browse.AssetLevels == 0 {
			c.Browse.AssetLevels = 1
		}
		set(&c.Browse.AssetSeparator, "/")
		set(&c.Browse.OnDuplicate, "error")
	}
	if c.AuthRetry == 0 {
		c.AuthRetry = 5 * time.Minute
	}
	if c.KeepAliveCount == 0 {
		c.KeepAliveCount = 5
	}
	if c.WatchdogTimeout == 0 {
		c.WatchdogTimeout = 3 * time.Second
	}
}

func newSource(t testing.TB, c Config) *Source {
	t.Helper()
	defaults(&c)
	src, err := New(&c, &engine.Env{Pipeline: "p", Kind: engine.KindSource, Type: "opcua", Name: "plc", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func runFor(t testing.TB, s *Source, out engine.Output, until func() bool, max time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	deadline := time.Now().Add(max)
	for !until() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestPollMatchesPLC(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 2, Tags: 10, Interval: 50 * time.Millisecond, Change: 1, Record: true, MaxNodesPerRead: 7})
	nodes := map[string]string{}
	for a := 0; a < 2; a++ {
		for g := 0; g < 10; g++ {
			nodes[fmt.Sprintf("a%d_t%d", a, g)] = plc.NodeID(a, g)
		}
	}
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Nodes: nodes, Asset: "line"})
	out := &collector{}
	runFor(t, src, out, func() bool { return len(out.snapshot()) >= 200 }, 10*time.Second)
	pts := out.snapshot()
	if len(pts) < 200 {
		t.Fatalf("got %d points, want ≥ 200", len(pts))
	}
	for _, p := range pts {
		var a, g int
		if _, err := fmt.Sscanf(p.Tag, "a%d_t%d", &a, &g); err != nil {
			t.Fatalf("tag %q", p.Tag)
		}
		if p.Quality != engine.Good || p.Asset != "line" {
			t.Fatalf("point %+v", p)
		}
		if !inHistory(plc.History(plc.NodeID(a, g)), p) {
			t.Fatalf("%s: value %v at %s was never written by the PLC", p.Tag, p.Value, p.Time())
		}
	}
}

// inHistory reports whether the PLC wrote p: a new value carries the
// write's source timestamp; a value read again unchanged is stamped when it
// was observed, so it must equal the PLC's latest write before that time.
func inHistory(h []simplc.Sample, p engine.Point) bool {
	var latest *simplc.Sample
	for i := range h {
		s := &h[i]
		if s.TS.UnixNano() == p.TS && scalar(s.Value).Equal(p.Value) {
			return true
		}
		if s.TS.UnixNano() <= p.TS && (latest == nil || s.TS.After(latest.TS)) {
			latest = s
		}
	}
	return latest != nil && scalar(latest.Value).Equal(p.Value)
}

func TestSubscribeSeesEveryWrite(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 10, Interval: 200 * time.Millisecond, Change: 0.5, Record: true})
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Mode: "subscribe", Interval: 50 * time.Millisecond,
		Browse: &BrowseConfig{Root: "/Asset1", MaxDepth: 3}})
	out := &collector{}
	runFor(t, src, out, func() bool { return plc.Writes() > 60 }, 10*time.Second)
	pts := out.snapshot()
	var lastTS int64
	for _, p := range pts {
		lastTS = max(lastTS, p.TS)
	}
	got := map[string]map[int64]engine.Value{}
	first := map[string]int64{}
	for _, p := range pts {
		if f, ok := first[p.Tag]; !ok || p.TS < f {
			first[p.Tag] = p.TS
		}
		if got[p.Tag] == nil {
			got[p.Tag] = map[int64]engine.Value{}
		}
		got[p.Tag][p.TS] = p.Value
		if p.Asset != "Asset1" {
			t.Fatalf("asset %q", p.Asset)
		}
	}
	missing, total := 0, 0
	for g := 0; g < 10; g++ {
		h := plc.History(plc.NodeID(0, g))
		// the last sample may have been written after the source stopped
		// values written before the subscription existed cannot be seen, nor
		// those of the last cycle, which may have been published after the
		// source stopped
		for _, s := range h {
			if s.TS.UnixNano() < first[plc.TagName(g)] || s.TS.UnixNano() >= lastTS {
				continue
			}
			total++
			v, ok := got[plc.TagName(g)][s.TS.UnixNano()]
			if !ok || !v.Equal(scalar(s.Value)) {
				t.Logf("%s: missing %v at %s (first seen %s)", plc.TagName(g), s.Value, s.TS.Format("15:04:05.000"), time.Unix(0, first[plc.TagName(g)]).Format("15:04:05.000"))
				missing++
			}
		}
	}
	if total == 0 || missing > 0 {
		t.Fatalf("%d of %d written values not seen", missing, total)
	}
}

func TestUntrustedServerCertificate(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 2, Interval: time.Second, Policies: []string{"None", "Basic256Sha256"}})
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Nodes: map[string]string{"x": plc.NodeID(0, 0)},
		SecurityPolicy: "Basic256Sha256", SecurityMode: "SignAndEncrypt"})
	_, err := src.connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is not trusted") {
		t.Fatalf("err = %v", err)
	}
}

func scalar(x any) engine.Value {
	v, _ := uacommon.Scalar(x)
	return v
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"no nodes", Config{Endpoint: "opc.tcp://x:1"}, "nodes"},
		{"bad node id", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "ns=x;q=1"}}, "nodes"},
		{"mode without policy", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, SecurityMode: "Sign"}, "security_mode"},
		{"password in clear", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, Username: "u"}, "username"},
		{"cert without key", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, UserCertificate: "c.pem"}, "user_private_key"},
		{"bad pattern", Config{Endpoint: "opc.tcp://x:1", Browse: &BrowseConfig{Include: []string{"["}}}, "browse"},
		{"negative asset levels", Config{Endpoint: "opc.tcp://x:1", Browse: &BrowseConfig{AssetLevels: -1}}, "browse"},
		{"lifetime below 3 keep-alives", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, KeepAliveCount: 10, LifetimeCount: 20}, "lifetime_count"},
		{"auth retry shorter than backoff", Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, ReconnectMin: time.Minute, ReconnectMax: time.Minute, AuthRetry: time.Second}, "auth_retry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			defaults(&cfg)
			_, err := New(&cfg, &engine.Env{Name: "x", DataDir: t.TempDir()})
			var fe *engine.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("err = %v, want a FieldError on %s", err, c.field)
			}
		})
	}
}

func TestValueMapping(t *testing.T) {
	src := newSource(t, Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}})
	tag := &tagState{nodeSpec: nodeSpec{tag: "v", asset: "a"}}
	src2 := newSource(t, Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}, Arrays: "json"})
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	now := ts.Add(time.Minute)
	dv := func(x any, st ua.StatusCode) *ua.DataValue {
		return &ua.DataValue{Value: ua.MustVariant(x), Status: st, SourceTimestamp: ts}
	}
	check := func(pts []engine.Point, want ...string) {
		t.Helper()
		if len(pts) != len(want) {
			t.Fatalf("got %d points, want %d", len(pts), len(want))
		}
		for i, p := range pts {
			got := fmt.Sprintf("%s=%s/%s", p.Tag, p.Value, p.Quality)
			if got != want[i] {
				t.Errorf("point %d: %s, want %s", i, got, want[i])
			}
		}
	}
	check(src.appendValue(nil, tag, dv(21.5, ua.StatusOK), now), "v=21.5/good")
	check(src.appendValue(nil, tag, dv(float32(24.47), ua.StatusOK), now), "v=24.47/good")
	check(src.appendValue(nil, tag, dv(uint16(7), ua.StatusOK), now), "v=7/good")
	check(src.appendValue(nil, tag, dv(ts, ua.StatusOK), now), "v=2026-11-22T10:00:00Z/good")
	check(src.appendValue(nil, tag, dv(1.0, ua.StatusUncertain), now), "v=1/uncertain")
	check(src.appendValue(nil, tag, dv(1.0, ua.StatusBadSensorFailure), now), "v=1/bad")
	check(src.appendValue(nil, tag, dv([]float64{1, 2}, ua.StatusOK), now), "v[0]=1/good", "v[1]=2/good")
	check(src2.appendValue(nil, tag, dv([]int32{1, 2}, ua.StatusOK), now), "v=[1,2]/good")
	fresh := &tagState{nodeSpec: nodeSpec{tag: "v", asset: "a"}}
	p := src.appendValue(nil, fresh, dv(1.0, ua.StatusBadSensorFailure), ts)[0] // read as it changed
	if p.Status != uint32(ua.StatusBadSensorFailure) || p.TS != ts.UnixNano() {
		t.Errorf("status %x ts %d", p.Status, p.TS)
	}
	noTS := src.appendValue(nil, tag, &ua.DataValue{Value: ua.MustVariant(1.0), ServerTimestamp: now}, now.Add(time.Hour))[0]
	if noTS.TS != now.UnixNano() {
		t.Errorf("ts without source timestamp = %d, want the server timestamp", noTS.TS)
	}
}

// A value whose source timestamp did not advance since the tag's previous
// read (a constant polled value, or on the first read one older than an
// interval) is stamped with the read's server timestamp when that advanced,
// else the receive time, so that
// ack − ts is the age of the latest observation; a changed value keeps its
// source timestamp.
func TestRereadUnchangedValueIsStampedWhenObserved(t *testing.T) {
	src := newSource(t, Config{Endpoint: "opc.tcp://x:1", Nodes: map[string]string{"a": "i=1"}})
	src.cfg.Interval = time.Second
	tag := &tagState{nodeSpec: nodeSpec{tag: "v", asset: "a"}}
	changed := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	read := func(srcTS, serverTS, now time.Time) int64 {
		dv := &ua.DataValue{Value: ua.MustVariant(1.0), SourceTimestamp: srcTS, ServerTimestamp: serverTS}
		return src.appendValue(nil, tag, dv, now)[0].TS
	}
	t0 := changed.Add(time.Hour)
	if got := read(changed, t0, t0); got != t0.UnixNano() {
		t.Fatalf("first read of a value unchanged for an hour: ts %v, want the read's %v", time.Unix(0, got).UTC(), t0)
	}
	t1 := t0.Add(time.Second)
	if got := read(changed, t1, t1.Add(time.Millisecond)); got != t1.UnixNano() {
		t.Fatalf("re-read of an unchanged value: ts %v, want the server timestamp %v", time.Unix(0, got).UTC(), t1)
	}
	t2 := t1.Add(time.Second)
	if got := read(changed, time.Time{}, t2); got != t2.UnixNano() {
		t.Fatalf("re-read without a server timestamp: ts %v, want the receive time", time.Unix(0, got).UTC())
	}
	t3 := t2.Add(time.Second)
	if got := read(changed, t1, t3); got != t3.UnixNano() {
		t.Fatalf("re-read with the server timestamp of an earlier read: ts %v, want the receive time %v", time.Unix(0, got).UTC(), t3)
	}
	t2 = t3
	moved := t2.Add(500 * time.Millisecond)
	if got := read(moved, t2.Add(time.Second), t2.Add(time.Second)); got != moved.UnixNano() {
		t.Fatalf("changed value: ts %v, want its source timestamp", time.Unix(0, got).UTC())
	}
	fresh := &tagState{nodeSpec: nodeSpec{tag: "w", asset: "a"}}
	recent := t2.Add(1500 * time.Millisecond)
	dv := &ua.DataValue{Value: ua.MustVariant(2.0), SourceTimestamp: recent, ServerTimestamp: t2.Add(2 * time.Second)}
	if got := src.appendValue(nil, fresh, dv, t2.Add(2*time.Second))[0].TS; got != recent.UnixNano() {
		t.Fatalf("first read of a value changed within the interval: ts %v, want its source timestamp", time.Unix(0, got).UTC())
	}
}

// The client-side deadband reports a value entering NaN once and a number
// after NaN (engine.Deadband, as the cov transform does); |a-b| > deadband is
// false for any NaN, which hid a value entering NaN.
func TestDeadbandNaN(t *testing.T) {
	for _, spec := range []nodeSpec{{dbType: "absolute", deadband: 0.5}, {dbType: "absolute"}, {dbType: "percent", deadband: 10}} {
		ts := &tagState{nodeSpec: spec}
		var got []bool
		for _, v := range []float64{1, math.NaN(), math.NaN(), 2, 2} {
			got = append(got, ts.pass(engine.Float(v), engine.Good))
		}
		if fmt.Sprint(got) != "[true true false true false]" {
			t.Errorf("%s %g: 1 NaN NaN 2 2 passed %v", spec.dbType, spec.deadband, got)
		}
	}
}

func TestDeadband(t *testing.T) {
	abs := &tagState{nodeSpec: nodeSpec{dbType: "absolute", deadband: 0.5}}
	var got []bool
	for _, v := range []float64{10, 10.3, 10.6, 10.2, 11.2} {
		got = append(got, abs.pass(engine.Float(v), engine.Good))
	}
	if fmt.Sprint(got) != "[true false true false true]" {
		t.Errorf("absolute: %v", got)
	}
	pct := &tagState{nodeSpec: nodeSpec{dbType: "percent", deadband: 10}}
	got = nil
	for _, v := range []float64{100, 105, 111, 111} {
		got = append(got, pct.pass(engine.Float(v), engine.Good))
	}
	if fmt.Sprint(got) != "[true false true false]" {
		t.Errorf("percent: %v", got)
	}
	if !pct.pass(engine.Float(111), engine.Bad) {
		t.Error("a quality change must pass")
	}
	str := &tagState{nodeSpec: nodeSpec{dbType: "absolute", deadband: 1}}
	if !str.pass(engine.String("a"), engine.Good) || str.pass(engine.String("a"), engine.Good) || !str.pass(engine.String("b"), engine.Good) {
		t.Error("non-numeric values pass when they change")
	}
}
