package engine

import (
	"fmt"
	"testing"
)

func TestShardSplitsAssetsExactlyOnce(t *testing.T) {
	for _, count := range []int{1, 2, 3, 5, 8} {
		owners := map[string]int{}
		perShard := make([]int, count)
		for a := 0; a < 1000; a++ {
			asset := fmt.Sprintf("line%d", a)
			for i := 0; i < count; i++ {
				if (Shard{Index: i, Count: count}).Owns(asset) {
					owners[asset]++
					perShard[i]++
				}
			}
		}
		for asset, n := range owners {
			if n != 1 {
				t.Fatalf("count %d: %s owned by %d shards", count, asset, n)
			}
		}
		if len(owners) != 1000 {
			t.Fatalf("count %d: %d of 1000 assets owned", count, len(owners))
		}
		// Jump hashing is balanced: no shard far from 1000/count.
		for i, n := range perShard {
			if want := 1000 / count; n < want/2 || n > want*3/2 {
				t.Errorf("count %d: shard %d owns %d assets, want about %d", count, i, n, want)
			}
		}
	}
}

func TestShardStable(t *testing.T) {
	// The split is part of the deployment contract: replicas of different
	// versions must agree on it, so these values must never change.
	want := map[string]int{"asset1": 3, "asset2": 0, "asset3": 3, "asset4": 3, "asset5": 0, "asset6": 2, "asset7": 2, "asset8": 1}
	for asset, shard := range want {
		if got := ShardOf(asset, 4); got != shard {
			t.Errorf("ShardOf(%q, 4) = %d, want %d", asset, got, shard)
		}
	}
}

func TestShardGrowthMovesFewAssets(t *testing.T) {
	moved := 0
	for a := 0; a < 10000; a++ {
		asset := fmt.Sprintf("asset%d", a)
		if ShardOf(asset, 4) != ShardOf(asset, 5) {
			moved++
		}
	}
	// Consistent hashing moves about 1/5 of the assets going from 4 to 5.
	if moved < 1500 || moved > 2500 {
		t.Fatalf("4→5 replicas moved %d of 10000 assets, want about 2000", moved)
	}
}

func TestShardValid(t *testing.T) {
	for _, s := range []Shard{{0, 0}, {0, 1}, {1, 2}} {
		if err := s.Valid(); err != nil {
			t.Errorf("%v: %v", s, err)
		}
	}
	for _, s := range []Shard{{2, 2}, {-1, 2}, {0, -1}} {
		if err := s.Valid(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if !(Shard{}).Owns("x") || !(Shard{Count: 1}).Owns("x") {
		t.Fatal("an unsharded process must own every asset")
	}
}

func BenchmarkShardOwns(b *testing.B) {
	s := Shard{Index: 1, Count: 3}
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if s.Owns("line42") {
			n++
		}
	}
	_ = n
}
