package opcua

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/flowd/flowd/engine"
	simplc "github.com/flowd/flowd/sim/plc"
)

func newShardSource(t *testing.T, c Config, shard engine.Shard) *Source {
	t.Helper()
	defaults(&c)
	src, err := New(&c, &engine.Env{Pipeline: "p", Kind: engine.KindSource, Type: "opcua", Name: "plc", DataDir: t.TempDir(), Shard: shard})
	if err != nil {
		t.Fatal(err)
	}
	return src.(*Source)
}

func resolveAll(t *testing.T, s *Source) ([]*tagState, int) {
	t.Helper()
	ctx := context.Background()
	c, err := s.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tags, others, err := s.resolve(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return tags, others
}

// TestShardSplitsAssets checks that two shards split browsed variables and
// explicit nodes by asset: every node read once, an asset never split.
func TestShardSplitsAssets(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 12, Tags: 3, Interval: time.Second})
	nodes := []NodeConfig{
		{Name: "a", ID: plc.NodeID(0, 0), Asset: "press"},
		{Name: "b", ID: plc.NodeID(0, 1), Asset: "press"},
		{Name: "c", ID: plc.NodeID(1, 0), Asset: "oven"},
		{Name: "d", ID: plc.NodeID(1, 1), Asset: "mixer"},
	}
	owner := map[string]int{}   // asset → shard
	seen := map[string]string{} // node id → asset
	for i := 0; i < 2; i++ {
		shard := engine.Shard{Index: i, Count: 2}
		src := newShardSource(t, Config{Endpoint: plc.Endpoint(), Node: nodes, Browse: &BrowseConfig{MaxDepth: 2, Include: []string{"Asset*/*"}}}, shard)
		tags, others := resolveAll(t, src)
		if len(tags)+others != 12*3+len(nodes) {
			t.Fatalf("shard %s: %d nodes + %d of other shards, want %d in all", shard, len(tags), others, 12*3+len(nodes))
		}
		for _, tg := range tags {
			if !shard.Owns(tg.asset) {
				t.Fatalf("shard %s reads %s of asset %s, owned by shard %d", shard, tg.id, tg.asset, engine.ShardOf(tg.asset, 2))
			}
			if prev, ok := owner[tg.asset]; ok && prev != i {
				t.Fatalf("asset %s read by shards %d and %d", tg.asset, prev, i)
			}
			owner[tg.asset] = i
			key := tg.id.String() + "/" + tg.asset
			if _, dup := seen[key]; dup {
				t.Fatalf("%s read twice", key)
			}
			seen[key] = tg.asset
		}
	}
	if len(seen) != 12*3+len(nodes) || len(owner) != 12+3 {
		t.Fatalf("the shards read %d nodes of %d assets, want %d of %d", len(seen), len(owner), 12*3+len(nodes), 15)
	}
}

// TestShardOwningNothingIdles checks that a replica whose shard owns none of
// a source's assets waits quietly instead of failing and reconnecting.
func TestShardOwningNothingIdles(t *testing.T) {
	plc := startPLC(t, simplc.Config{Assets: 1, Tags: 2, Interval: time.Second})
	shard := engine.Shard{Index: 1 - engine.ShardOf("line1", 2), Count: 2}
	src := newShardSource(t, Config{Endpoint: plc.Endpoint(), Asset: "line1", Nodes: map[string]string{"t": plc.NodeID(0, 0)}}, shard)
	out := &collector{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := src.Run(ctx, out); err != nil {
		t.Fatal(err)
	}
	if n := len(out.snapshot()); n != 0 {
		t.Fatalf("%d points from a shard that owns no asset", n)
	}
	if r := testutil.ToFloat64(src.m.reconnects); r != 0 {
		t.Fatalf("%v reconnections, want none", r)
	}
}
