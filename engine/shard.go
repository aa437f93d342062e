package engine

import (
	"fmt"
	"hash/fnv"
)

// Shard is this process's share of the assets when several replicas read the
// same plant: replica Index of Count (a StatefulSet ordinal and its replica
// count). Sources that address assets (OPC UA, sim) read only the assets
// their shard owns, so every asset, and so every (asset, tag), is read by
// exactly one replica and change-of-value state stays on one replica.
//
// The zero Shard (Count 0) and any Shard with Count 1 own every asset.
type Shard struct {
	Index int `hcl:"index,required" doc:"this replica's index, 0 … count-1 (e.g. env(\"POD_ORDINAL\") or ordinal(env(\"HOSTNAME\")))"`
	Count int `hcl:"count,required" doc:"number of replicas sharing the assets"`
}

// Valid reports a shard whose index is outside 0 … count-1.
func (s Shard) Valid() error {
	if s.Count < 0 {
		return fmt.Errorf("count must not be negative")
	}
	if s.Count > 0 && (s.Index < 0 || s.Index >= s.Count) {
		return fmt.Errorf("index %d is outside 0 … %d", s.Index, s.Count-1)
	}
	return nil
}

// Enabled is true when assets are split across more than one replica.
func (s Shard) Enabled() bool { return s.Count > 1 }

// Owns reports whether this shard reads asset. The assignment is a stable
// function of the asset name and the count only: every replica computes the
// same split, across restarts and versions. Changing count moves as few
// assets as possible (about 1/count of them).
func (s Shard) Owns(asset string) bool {
	if s.Count <= 1 {
		return true
	}
	return ShardOf(asset, s.Count) == s.Index
}

// ShardOf is the shard, 0 … count-1, that owns asset: jump consistent hashing
// (Lamping and Veach, 2014) of the asset name's 64-bit FNV-1a hash.
func ShardOf(asset string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(asset))
	key := h.Sum64()
	var b, j int64 = -1, 0
	for j < int64(count) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

func (s Shard) String() string {
	if s.Count <= 1 {
		return "all"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}
