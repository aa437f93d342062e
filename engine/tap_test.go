package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// tapRecorder keeps the values each tapped component passed.
type tapRecorder struct {
	mu     sync.Mutex
	values map[string][]int64
}

func (r *tapRecorder) emit(pipeline, component string, p *Point) bool {
	v, _ := p.Value.Int64()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values[pipeline+"/"+component] = append(r.values[pipeline+"/"+component], v)
	return true
}

func tapPipeline(sink Sink) *PipelineConfig {
	return &PipelineConfig{Name: "p", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "src", &testSource{batches: 50, size: 20}),
		nodeCfg(KindTransform, "even", passTransform{keepEven: true}, "source.src"),
		nodeCfg(KindSink, "out", sink, "transform.even"),
	}}
}

// A tap sees exactly what leaves each component: all 1,000 source points,
// the 500 even ones after the filter, and the 500 the sink delivered, which
// is what the sink itself recorded.
func TestTapSeesWhatLeavesEachComponent(t *testing.T) {
	sink := &countSink{values: map[int64]int{}}
	rt, err := New([]*PipelineConfig{tapPipeline(sink)}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	rec := &tapRecorder{values: map[string][]int64{}}
	h, err := rt.Tap(TapConfig{Limit: 1 << 30, Interval: time.Hour, Emit: rec.emit})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if want := []string{"p/sink.out", "p/source.src", "p/transform.even"}; !slices.Equal(h.Components, want) {
		t.Fatalf("tapping %v, want %v", h.Components, want)
	}
	if err := rt.Run(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	src, even, out := rec.values["p/source.src"], rec.values["p/transform.even"], rec.values["p/sink.out"]
	if len(src) != 1000 || len(even) != 500 || len(out) != 500 {
		t.Fatalf("tapped %d source, %d transform, %d sink points; want 1000, 500, 500", len(src), len(even), len(out))
	}
	for _, v := range even {
		if v%2 != 0 {
			t.Fatalf("transform tap saw %d, which the filter drops", v)
		}
	}
	got := map[int64]int{}
	for _, v := range out {
		got[v]++
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(got) != len(sink.values) {
		t.Fatalf("sink tap saw %d values, the sink wrote %d", len(got), len(sink.values))
	}
	for v, n := range sink.values {
		if got[v] != n {
			t.Fatalf("value %d: sink wrote it %d times, tap saw it %d times", v, n, got[v])
		}
	}
	if s := h.Skipped(); s != 0 {
		t.Errorf("%d points skipped without a limit", s)
	}
}

// Sampling and the rate limit bound what a tap passes; the rest is counted.
func TestTapSamplesAndLimits(t *testing.T) {
	for _, tc := range []struct {
		name          string
		sample, limit int
		want          int
	}{
		{"sample", 10, 1 << 30, 100},
		{"limit", 1, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := New([]*PipelineConfig{tapPipeline(&countSink{})}, Options{Logger: quietLog})
			if err != nil {
				t.Fatal(err)
			}
			rec := &tapRecorder{values: map[string][]int64{}}
			h, err := rt.Tap(TapConfig{Patterns: []string{"source.*"}, Sample: tc.sample, Limit: tc.limit, Interval: time.Hour, Emit: rec.emit})
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.Run(context.Background(), time.Minute); err != nil {
				t.Fatal(err)
			}
			h.Close()
			got := rec.values["p/source.src"]
			if len(got) != tc.want || len(rec.values) != 1 {
				t.Fatalf("tap passed %d points from %d components, want %d from 1", len(got), len(rec.values), tc.want)
			}
			if s := h.Skipped(); s != int64(1000-tc.want) {
				t.Errorf("skipped %d, want %d", s, 1000-tc.want)
			}
			if tc.sample > 1 && got[0] != int64(tc.sample-1) {
				t.Errorf("first sampled value %d, want %d", got[0], tc.sample-1)
			}
		})
	}
}

// A reader that cannot keep up loses points to the tap, never to the pipeline.
func TestTapSlowReaderNeverBlocksThePipeline(t *testing.T) {
	sink := &countSink{}
	rt, err := New([]*PipelineConfig{tapPipeline(sink)}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	h, err := rt.Tap(TapConfig{Patterns: []string{"p/sink.out"}, Limit: 1 << 30, Emit: func(string, string, *Point) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Run(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if skipped := h.Skipped(); sink.points != 500 || skipped != 500 {
		t.Fatalf("sink wrote %d points, tap skipped %d; want 500 and 500", sink.points, skipped)
	}
}

func TestTapUnknownComponent(t *testing.T) {
	rt, err := New([]*PipelineConfig{tapPipeline(&countSink{})}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.Tap(TapConfig{Patterns: []string{"sink.nope"}, Emit: func(string, string, *Point) bool { return true }})
	if !errors.Is(err, ErrNoComponent) {
		t.Fatalf("err = %v, want ErrNoComponent", err)
	}
}

// InputsOf taps what arrives at a component: the outputs of its inputs.
func TestTapInputsOf(t *testing.T) {
	rt, err := New([]*PipelineConfig{tapPipeline(&countSink{})}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	emit := func(string, string, *Point) bool { return true }
	for _, tc := range []struct {
		patterns, inputsOf []string
		want               []string
	}{
		{nil, []string{"sink.out"}, []string{"p/transform.even"}},
		{nil, []string{"p/*"}, []string{"p/source.src", "p/transform.even"}},
		{[]string{"sink.*"}, []string{"transform.even"}, []string{"p/sink.out", "p/source.src"}},
	} {
		h, err := rt.Tap(TapConfig{Patterns: tc.patterns, InputsOf: tc.inputsOf, Emit: emit})
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		if !slices.Equal(h.Components, tc.want) {
			t.Errorf("patterns %v, inputs of %v: tapping %v, want %v", tc.patterns, tc.inputsOf, h.Components, tc.want)
		}
	}
	if _, err := rt.Tap(TapConfig{InputsOf: []string{"source.src"}, Emit: emit}); !errors.Is(err, ErrNoComponent) {
		t.Errorf("inputs of a source: err = %v, want ErrNoComponent", err)
	}
}
