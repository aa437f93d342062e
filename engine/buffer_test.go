package engine

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// heapOf returns the live heap bytes that build's result holds: the median
// of three builds, since a goroutine another test left draining can free or
// take memory between two readings of one.
func heapOf(build func() any) (any, int64) {
	var x any
	var heaps [3]int64
	for i := range heaps {
		var a, b runtime.MemStats
		x = nil
		runtime.GC()
		runtime.ReadMemStats(&a)
		x = build()
		runtime.GC()
		runtime.ReadMemStats(&b)
		heaps[i] = int64(b.HeapAlloc) - int64(a.HeapAlloc)
	}
	slices.Sort(heaps[:])
	return x, heaps[1]
}

// The estimate (the memory buffer's, and the kafka source's in-flight
// bytes) covers everything a point holds, attrs included: checked against
// the heap the points really take, for small points, many small attrs, one
// large attribute and large string values.
func TestEstimateBytesMatchesHeap(t *testing.T) {
	for _, c := range []struct {
		name                string
		attrs, attrBytes, n int
		valueBytes          int // a string value of this size; 0: a float
	}{{"no attrs", 0, 0, 20000, 0}, {"10 small attrs", 10, 20, 20000, 0}, {"one 200 KB attr", 1, 200 << 10, 100, 0},
		{"64 KB string values", 0, 0, 100, 64 << 10}} {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			x, heap := heapOf(func() any {
				pts := make([]Point, n)
				for i := range pts {
					pts[i] = Point{Asset: "line-" + strconv.Itoa(i), Tag: "temperature-" + strconv.Itoa(i), Value: Float(1)}
					if c.valueBytes > 0 {
						pts[i].Value = String(strings.Repeat("v", c.valueBytes) + strconv.Itoa(i))
					}
					if c.attrs > 0 {
						pts[i].Attrs = make(map[string]string, c.attrs)
						for j := 0; j < c.attrs; j++ {
							pts[i].Attrs["k"+strconv.Itoa(j)] = strings.Repeat("v", c.attrBytes) + strconv.Itoa(i)
						}
					}
				}
				return pts
			})
			est := EstimateBytes(x.([]Point))
			ratio := float64(est) / float64(heap)
			t.Logf("%d points: heap %d bytes, estimate %d (%.2f)", n, heap, est, ratio)
			if ratio < 0.6 || ratio > 1.6 {
				t.Errorf("estimate %d bytes for a heap of %d (ratio %.2f)", est, heap, ratio)
			}
			runtime.KeepAlive(x)
		})
	}
}

// A map shared by the points of a batch is counted once.
func TestEstimateBytesSharedAttrs(t *testing.T) {
	shared := map[string]string{"site": strings.Repeat("x", 1000)}
	pts := make([]Point, 100)
	for i := range pts {
		pts[i] = Point{Tag: "t", Attrs: shared}
	}
	one := EstimateBytes(pts[:1])
	if all := EstimateBytes(pts); all-one != 99*EstimateBytes([]Point{{Tag: "t"}}) {
		t.Errorf("100 points sharing attrs: %d bytes, one: %d", all, one)
	}
}

// With 200 KB of attrs per point, an 8 MiB memory buffer holds about 40
// points, not the 40,000 a size estimate without attrs would let in.
func TestMemBufferBoundsAttrs(t *testing.T) {
	m := newMemBuffer(BufferConfig{MaxSize: 8 << 20, MaxPoints: 100000, WhenFull: "drop_newest"}, func(int) {})
	big := strings.Repeat("a", 200<<10)
	accepted := 0
	for i := 0; i < 1000; i++ {
		before := m.Stats().Points
		m.Push(context.Background(), Batch{Points: []Point{{Tag: "t", Attrs: map[string]string{"blob": big}}}})
		if m.Stats().Points > before {
			accepted++
		}
	}
	st := m.Stats()
	t.Logf("accepted %d points, %d bytes", accepted, st.Bytes)
	if accepted > 41 || st.Bytes > 8<<20 || st.Bytes < 7<<20 {
		t.Errorf("8 MiB buffer took %d points of 200 KB (%d bytes estimated)", accepted, st.Bytes)
	}
}

// EstimateBytes runs on every memory-buffer Push.
func BenchmarkEstimateBytes(b *testing.B) {
	shared := map[string]string{"site": "north", "line": "3"}
	for _, c := range []struct {
		name  string
		attrs func(i int) map[string]string
	}{
		{"no attrs", func(int) map[string]string { return nil }},
		{"shared attrs", func(int) map[string]string { return shared }},
		{"own attrs", func(i int) map[string]string { return map[string]string{"site": "north", "seq": strconv.Itoa(i)} }},
	} {
		pts := make([]Point, 1000)
		for i := range pts {
			pts[i] = Point{Asset: "line1", Tag: "temperature", Value: Float(21.5), Attrs: c.attrs(i)}
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				EstimateBytes(pts)
			}
		})
	}
}
