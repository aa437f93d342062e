package opcua

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

// lockedBuf is a log destination shared by goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// onFirst runs f once, on the first batch, and keeps every point.
type onFirst struct {
	collector
	once sync.Once
	f    func()
}

func (o *onFirst) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	o.once.Do(o.f)
	return o.collector.Emit(ctx, pts, done)
}

// TestSubscribeCutShortMarksEmittedTagsBad checks that a session lost while
// its subscriptions were still being created, after the first ones had
// delivered values, still ends those tags' series with a bad point: good
// values must not stand for a connection that is gone.
func TestSubscribeCutShortMarksEmittedTagsBad(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 5, Tags: 100, Interval: 20 * time.Millisecond, Change: 1})
	nodes := map[string]string{}
	for a := 0; a < 5; a++ {
		for g := 0; g < 100; g++ {
			nodes[plc.AssetName(a)+"_"+plc.TagName(g)] = plc.NodeID(a, g)
		}
	}
	c := Config{Endpoint: plc.Endpoint(), Nodes: nodes, Mode: "subscribe", Interval: 20 * time.Millisecond,
		MaxItemsPerSub: 1, RequestTimeout: time.Second, ReconnectMin: time.Hour, ReconnectMax: time.Hour, AuthRetry: time.Hour}
	defaults(&c)
	logs := &lockedBuf{}
	env := &engine.Env{Pipeline: "p", Kind: engine.KindSource, Type: "opcua", Name: "plc", DataDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	src, err := New(&c, env)
	if err != nil {
		t.Fatal(err)
	}
	// the first values arrive while most of the 500 subscriptions are yet
	// to be created: the server goes away then
	out := &onFirst{f: func() { go plc.Close() }}
	lastBad := func() bool {
		last := map[string]engine.Quality{}
		for _, p := range out.snapshot() {
			last[p.Tag] = p.Quality
		}
		for _, q := range last {
			if q != engine.Bad {
				return false
			}
		}
		return len(last) > 0
	}
	runFor(t, src.(*Source), out, lastBad, 20*time.Second)
	if strings.Contains(logs.String(), "msg=connected") {
		t.Fatalf("every subscription was created before the server closed: the case is not exercised\n%s", logs.String())
	}
	good := map[string]bool{}
	for _, p := range out.snapshot() {
		if p.Quality == engine.Good {
			good[p.Tag] = true
		}
	}
	if len(good) == 0 {
		t.Fatal("no value arrived before the server closed")
	}
	if !lastBad() {
		last := map[string]engine.Quality{}
		for _, p := range out.snapshot() {
			last[p.Tag] = p.Quality
		}
		n := 0
		for _, q := range last {
			if q != engine.Bad {
				n++
			}
		}
		t.Fatalf("%d of the %d tags that delivered a value end good, with the server gone\n%s", n, len(good), logs.String())
	}
}
