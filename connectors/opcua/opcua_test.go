package opcua

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	uacommon "github.com/flowd/flowd/common/opcua"
	"github.com/flowd/flowd/common/opcua/simplc"
	"github.com/flowd/flowd/engine"
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

func inHistory(h []simplc.Sample, p engine.Point) bool {
	for _, s := range h {
		if s.TS.UnixNano() == p.TS && scalar(s.Value).Equal(p.Value) {
			return true
		}
	}
	return false
}

func TestSubscribeSeesEveryWrite(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 10, Interval: 200 * time.Millisecond, Change: 0.5, Record: true})
	src := newSource(t, Config{Endpoint: plc.Endpoint(), Mode: "subscribe", Interval: 50 * time.Millisecond,
		Browse: &BrowseConfig{MaxDepth: 3, Include: []string{"Asset1/*"}}})
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
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 2, Interval: time.Second})
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
