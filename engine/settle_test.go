package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func fastBackoff(t testing.TB) {
	old := backoffBase
	backoffBase = time.Millisecond
	t.Cleanup(func() { backoffBase = old })
}

// outcomeSource emits batches of consecutive values and records each batch's
// merged outcome.
type outcomeSource struct {
	batches, size int
	mu            sync.Mutex
	outcomes      map[int]error // batch → outcome
	order         []int         // batches in the order their outcomes came
	acked         atomic.Int64
}

func (s *outcomeSource) Run(ctx context.Context, out Output) error {
	s.outcomes = map[int]error{}
	for i := 0; i < s.batches; i++ {
		pts := GetPoints(s.size)
		for j := 0; j < s.size; j++ {
			pts = append(pts, Point{Asset: "a", Tag: "t", Value: Int(int64(i*s.size + j)), TS: time.Now().UnixNano()})
		}
		if err := out.Emit(ctx, pts, func(err error) {
			s.mu.Lock()
			s.outcomes[i] = err
			s.order = append(s.order, i)
			s.mu.Unlock()
			s.acked.Add(1)
		}); err != nil {
			return err
		}
	}
	return nil
}

// recordSink records every value it took and how often.
type recordSink struct {
	mu     sync.Mutex
	values map[int64]int
	writes int
	gate   chan struct{} // when set, each Write waits for it
}

func (s *recordSink) take(pts []Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values == nil {
		s.values = map[int64]int{}
	}
	for _, p := range pts {
		v, _ := p.Value.Int64()
		s.values[v]++
	}
}

func (s *recordSink) Write(ctx context.Context, pts []Point) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.writes++
	s.mu.Unlock()
	s.take(pts)
	return nil
}

// oddRejectingSink rejects odd values and, for its first failures writes,
// also fails the rest transiently.
type oddRejectingSink struct {
	recordSink
	failures atomic.Int32
}

func (s *oddRejectingSink) Write(_ context.Context, pts []Point) error {
	var we WriteError
	var ok []Point
	for i := range pts {
		if v, _ := pts[i].Value.Int64(); v%2 == 1 {
			we.Reject(i, "odd", errors.New("odd value"))
		} else {
			ok = append(ok, pts[i])
		}
	}
	if s.failures.Add(-1) >= 0 {
		we.Err = errors.New("temporarily unavailable")
		return we.Result()
	}
	s.take(ok)
	return we.Result()
}

func checkCounters(t *testing.T, rt *Runtime) Totals {
	t.Helper()
	tot := rt.Totals()
	for _, c := range rt.Status().Pipelines[0].Components {
		if c.Delivered < 0 || c.Received < 0 {
			t.Fatalf("%s: negative counter: %+v", c.ID, c)
		}
		for r, d := range c.Dropped {
			if d < 0 {
				t.Fatalf("%s: dropped[%s] = %d", c.ID, r, d)
			}
		}
	}
	return tot
}

// A sink that rejects half of a batch and fails twice: the engine settles the
// rejects once (50 dead letters, not 150) and retries only the rest.
func TestRejectsSettledOnceAcrossRetries(t *testing.T) {
	fastBackoff(t)
	src := &outcomeSource{batches: 1, size: 100}
	sink := &oddRejectingSink{}
	sink.failures.Store(2)
	dead := &recordSink{}
	pc := &PipelineConfig{Name: "p", DeadLetter: "dead", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", sink, "source.s"), nodeCfg(KindSink, "dead", dead),
	}}
	rt, err := run(t, pc, context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead.values) != 50 {
		t.Fatalf("dead-letter sink got %d distinct values, want 50", len(dead.values))
	}
	for v, c := range dead.values {
		if v%2 != 1 || c != 1 {
			t.Fatalf("dead letter %d seen %d times", v, c)
		}
	}
	for v, c := range sink.values {
		if v%2 != 0 || c != 1 {
			t.Fatalf("sink took %d %d times", v, c)
		}
	}
	if len(sink.values) != 50 {
		t.Fatalf("sink took %d values, want 50", len(sink.values))
	}
	tot := checkCounters(t, rt)
	// The sink delivered 50 and dropped 50 (rejected); the dead-letter sink delivered 50.
	if tot.In != 100 || tot.Delivered != 100 || tot.Dropped != 50 {
		t.Fatalf("in %d delivered %d dropped %d, want 100 100 50", tot.In, tot.Delivered, tot.Dropped)
	}
	for _, c := range rt.Status().Pipelines[0].Components {
		if c.ID == "sink.k" && (c.Delivered != 50 || c.Dropped["odd"] != 50) {
			t.Fatalf("sink.k delivered %d dropped %v", c.Delivered, c.Dropped)
		}
	}
	if err := src.outcomes[0]; !errors.Is(err, ErrRejected) {
		t.Fatalf("source outcome %v, want rejected", err)
	}
}

// The source's ack waits for the dead-letter sink to take the batch's dead letters.
func TestAckWaitsForDeadLetters(t *testing.T) {
	fastBackoff(t)
	src := &outcomeSource{batches: 1, size: 10}
	sink := &oddRejectingSink{}
	dead := &recordSink{gate: make(chan struct{})}
	pc := &PipelineConfig{Name: "p", DeadLetter: "dead", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", sink, "source.s"), nodeCfg(KindSink, "dead", dead),
	}}
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- rt.Run(context.Background(), 10*time.Second) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sink.mu.Lock()
		n := len(sink.values)
		sink.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sink never wrote")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if src.acked.Load() != 0 {
		t.Fatal("source acknowledged before the dead-letter sink took the dead letters")
	}
	close(dead.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if src.acked.Load() != 1 || len(dead.values) != 5 {
		t.Fatalf("acked %d, dead letters %d", src.acked.Load(), len(dead.values))
	}
}

// rejectingSource rejects every message it decodes and emits an empty batch
// for them, as a source with an all-bad batch does.
type rejectingSource struct {
	env   *Env
	acked atomic.Int64
	out   atomic.Pointer[error]
}

func (s *rejectingSource) Run(ctx context.Context, out Output) error {
	s.env.Reject([]Point{{Tag: "raw", Value: String("garbage")}}, "decode", errors.New("bad"))
	return out.Emit(ctx, nil, func(err error) { s.out.Store(&err); s.acked.Add(1) })
}

func TestSourceRejectsHoldTheAck(t *testing.T) {
	src := &rejectingSource{env: &Env{}}
	dead := &recordSink{gate: make(chan struct{})}
	sn := nodeCfg(KindSource, "s", src)
	sn.Env = src.env
	pc := &PipelineConfig{Name: "p", DeadLetter: "dead", Nodes: []*NodeConfig{sn, nodeCfg(KindSink, "dead", dead)}}
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- rt.Run(context.Background(), 10*time.Second) }()
	time.Sleep(50 * time.Millisecond)
	if src.acked.Load() != 0 {
		t.Fatal("an all-rejected batch was acknowledged before its dead letters were taken")
	}
	close(dead.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if src.acked.Load() != 1 || dead.writes != 1 {
		t.Fatalf("acked %d, dead-letter writes %d", src.acked.Load(), dead.writes)
	}
}

func TestAckOutcomeMerge(t *testing.T) {
	rej := errRejectedBy("sink.x")
	boom := errors.New("boom")
	for _, tc := range []struct {
		in   []error
		want error
	}{
		{[]error{nil, nil}, nil},
		{[]error{nil, boom}, boom},
		{[]error{nil, rej}, rej},
		// A copy not delivered must not be committed because another was
		// rejected: errored wins, whatever the order.
		{[]error{boom, rej}, boom},
		{[]error{rej, boom, nil}, boom},
		{[]error{rej, boom, errors.New("later")}, boom},
	} {
		var got error
		var calls int
		b := NewBatch(GetPoints(1), func(err error) { got = err; calls++ })
		b.retain(len(tc.in) - 1)
		for _, e := range tc.in {
			c := b
			c.Points = nil
			c.Ack(e)
		}
		if calls != 1 || got != tc.want {
			t.Fatalf("%v: got %v (%d calls), want %v", tc.in, got, calls, tc.want)
		}
	}
}

// randomSink settles each point of each Write at random: delivered, retried
// or rejected; sometimes the whole Write fails. It records what it settled,
// which is the model the engine's counts and dead letters must match.
type randomSink struct {
	rnd       *rand.Rand
	delivered map[int64]int
	rejected  map[int64]int
}

func (s *randomSink) Write(_ context.Context, pts []Point) error {
	if s.rnd.IntN(5) == 0 {
		return errors.New("whole write failed")
	}
	var we WriteError
	for i := range pts {
		v, _ := pts[i].Value.Int64()
		switch s.rnd.IntN(4) {
		case 0:
			we.Retry(i)
		case 1:
			we.Reject(i, "random", nil)
			s.rejected[v]++
		default:
			s.delivered[v]++
		}
	}
	if len(we.retry) > 0 {
		we.Err = errors.New("some to retry")
	}
	return we.Result()
}

// asyncRandomSink is randomSink with writes settled later, from goroutines,
// in random order; it records the most writes it had in flight.
type asyncRandomSink struct {
	mu       sync.Mutex
	r        *randomSink
	inFlight int
	peak     int
	max      int
}

// Write is used when max_in_flight is 1.
func (s *asyncRandomSink) Write(ctx context.Context, pts []Point) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 1 {
		panic("the engine must use WriteAsync")
	}
	return s.r.Write(ctx, pts)
}

func (s *asyncRandomSink) MaxInFlight() int { return s.max }

func (s *asyncRandomSink) WriteAsync(ctx context.Context, pts []Point, settle func(error)) {
	s.mu.Lock()
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	delay := time.Duration(s.r.rnd.IntN(2000)) * time.Microsecond
	s.mu.Unlock()
	go func() {
		time.Sleep(delay)
		s.mu.Lock()
		s.inFlight--
		err := s.r.Write(ctx, pts)
		s.mu.Unlock()
		settle(err)
	}()
}

func checkRandomOutcomes(t *testing.T, seed uint64, batches, size int) {
	checkRandomOutcomesWith(t, seed, batches, size, 0)
}

// checkRandomOutcomesWith runs the model check; maxInFlight > 0 uses an
// AsyncSink with that many writes in flight.
func checkRandomOutcomesWith(t *testing.T, seed uint64, batches, size, maxInFlight int) {
	src := &outcomeSource{batches: batches, size: size}
	sink := &randomSink{rnd: rand.New(rand.NewPCG(seed, 1)), delivered: map[int64]int{}, rejected: map[int64]int{}}
	var comp Sink = sink
	var async *asyncRandomSink
	if maxInFlight > 0 {
		async = &asyncRandomSink{r: sink, max: maxInFlight}
		comp = async
	}
	dead := &recordSink{}
	pc := &PipelineConfig{Name: "p", DeadLetter: "dead", Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", comp, "source.s"), nodeCfg(KindSink, "dead", dead),
	}}
	rt, err := run(t, pc, context.Background(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	total := batches * size
	for v := int64(0); v < int64(total); v++ {
		d, r := sink.delivered[v], sink.rejected[v]
		if d+r != 1 {
			t.Fatalf("seed %d: value %d delivered %d and rejected %d times, want once in all", seed, v, d, r)
		}
		if dead.values[v] != r {
			t.Fatalf("seed %d: value %d rejected %d times but %d dead letters", seed, v, r, dead.values[v])
		}
	}
	tot := checkCounters(t, rt)
	nrej := int64(len(sink.rejected))
	if tot.In != int64(total) || tot.Dropped != nrej || tot.Delivered != int64(total) {
		t.Fatalf("seed %d: in %d delivered %d dropped %d, want %d %d %d", seed, tot.In, tot.Delivered, tot.Dropped, total, total, nrej)
	}
	if async != nil && (async.peak > maxInFlight || (maxInFlight > 1 && batches >= 10 && async.peak < 2)) {
		t.Fatalf("seed %d: %d writes in flight at most, want 2..%d", seed, async.peak, maxInFlight)
	}
	// The sink releases batches in order; a batch with dead letters also
	// waits for the dead-letter sink, so only the others must stay in order.
	last := -1
	for _, b := range src.order {
		if errors.Is(src.outcomes[b], ErrRejected) {
			continue
		}
		if b < last {
			t.Fatalf("seed %d: batch %d acknowledged after batch %d: %v", seed, b, last, src.order)
		}
		last = b
	}
	for b := 0; b < batches; b++ {
		anyRej := false
		for v := b * size; v < (b+1)*size; v++ {
			anyRej = anyRej || sink.rejected[int64(v)] > 0
		}
		if got := errors.Is(src.outcomes[b], ErrRejected); got != anyRej || (!anyRej && src.outcomes[b] != nil) {
			t.Fatalf("seed %d: batch %d outcome %v, rejected points: %v", seed, b, src.outcomes[b], anyRej)
		}
	}
}

// Pipelined writes settle in any order; the model still holds, no more
// writes than max_in_flight are in flight, and batches are acknowledged
// upstream in the order they were taken.
func TestAsyncWriteOutcomesMatchModelInOrder(t *testing.T) {
	fastBackoff(t)
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkRandomOutcomesWith(t, seed, 30, 10, 4) })
	}
}

func TestRandomWriteOutcomesMatchModel(t *testing.T) {
	fastBackoff(t)
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkRandomOutcomes(t, seed, 10, 20) })
	}
}

func FuzzWriteOutcomes(f *testing.F) {
	fastBackoff(f)
	f.Add(uint64(1), uint8(3), uint8(7))
	f.Add(uint64(99), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, batches, size uint8) {
		checkRandomOutcomesWith(t, seed, int(batches%8)+1, int(size%50)+1, int(seed%4))
	})
}

// blockSource emits until its own emit context ends, which it cancels
// itself once the pipeline is full; Emit must then give up.
type blockSource struct {
	emitErr chan error
}

func (s *blockSource) Run(ctx context.Context, out Output) error {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The pipeline is full long before this: the source gives up its emit.
	time.AfterFunc(200*time.Millisecond, cancel)
	for i := 0; ; i++ {
		pts := append(GetPoints(1), Point{Tag: "t", Value: Int(int64(i))})
		if err := out.Emit(ectx, pts, nil); err != nil {
			s.emitErr <- err
			<-ctx.Done()
			return nil
		}
	}
}

func TestEmitHonoursItsContext(t *testing.T) {
	src := &blockSource{emitErr: make(chan error, 1)}
	stuck := &recordSink{gate: make(chan struct{})} // never opens
	pc := &PipelineConfig{Name: "p", QueueSize: 1, Nodes: []*NodeConfig{nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", stuck, "source.s")}}
	pc.Nodes[1].Buffer.MaxPoints = 2
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 100*time.Millisecond) }()
	select {
	case err := <-src.emitErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Emit returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Emit kept blocking after its context ended")
	}
	cancel()
	<-done
	tot := rt.Totals()
	if tot.In != tot.Delivered+tot.Dropped {
		t.Fatalf("in %d != delivered %d + dropped %d", tot.In, tot.Delivered, tot.Dropped)
	}
}

// A stuck sink acknowledges nothing, so the latency of acknowledged points
// cannot show it; the age of its oldest unacknowledged point does: it rises
// past the SLO (readiness fails, the metric says so) and falls back to 0
// once the sink recovers.
func TestOldestUnackedRisesWhileASinkIsStuck(t *testing.T) {
	src := &outcomeSource{batches: 3, size: 10}
	stuck := &recordSink{gate: make(chan struct{})}
	pc := &PipelineConfig{Name: "p", LatencySLO: 100 * time.Millisecond, Nodes: []*NodeConfig{
		nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", stuck, "source.s")}}
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, 5*time.Second) }()
	oldest := func() (float64, []string) {
		st := rt.Status()
		for _, c := range st.Pipelines[0].Components {
			if c.ID == "sink.k" {
				return c.Latency.OldestUnackedms, st.Pipelines[0].Problems
			}
		}
		t.Fatal("no sink.k")
		return 0, nil
	}
	time.Sleep(300 * time.Millisecond)
	age, problems := oldest()
	if age < 250 || !slices.Contains(problems, "sink.k: oldest unacknowledged point older than the SLO") {
		t.Fatalf("stuck sink: oldest unacked %.0f ms, problems %v", age, problems)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(rt.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metric float64
	for _, f := range fams {
		if f.GetName() == "flowd_oldest_unacked_seconds" {
			metric = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if metric < 0.25 {
		t.Fatalf("flowd_oldest_unacked_seconds = %v, want the stuck batch's age", metric)
	}
	close(stuck.gate)
	deadline := time.Now().Add(5 * time.Second)
	for src.acked.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	age, problems = oldest()
	if age != 0 || slices.Contains(problems, "sink.k: oldest unacknowledged point older than the SLO") {
		t.Fatalf("recovered sink: oldest unacked %.0f ms, problems %v", age, problems)
	}
	cancel()
	<-done
}

// hangingAsyncSink starts writes that settle only long after the deadline,
// like a broker that stopped answering.
type hangingAsyncSink struct{ started atomic.Int64 }

func (s *hangingAsyncSink) Write(context.Context, []Point) error { panic("WriteAsync expected") }
func (s *hangingAsyncSink) MaxInFlight() int                     { return 4 }
func (s *hangingAsyncSink) WriteAsync(_ context.Context, _ []Point, settle func(error)) {
	s.started.Add(1)
	time.AfterFunc(3*time.Second, func() { settle(nil) }) // too late: must not block or count
}

// The drain deadline cuts off writes in flight: the sources hear an error,
// every point is counted, and a late settle changes nothing.
func TestDrainDeadlineCutsOffWritesInFlight(t *testing.T) {
	src := &outcomeSource{batches: 10, size: 10}
	sink := &hangingAsyncSink{}
	pc := &PipelineConfig{Name: "p", Nodes: []*NodeConfig{nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", sink, "source.s")}}
	rt, err := New([]*PipelineConfig{pc}, Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := rt.Run(ctx, 100*time.Millisecond); err == nil {
		t.Fatal("drained although no write settled")
	}
	if sink.started.Load() != 4 {
		t.Fatalf("%d writes started, want max_in_flight = 4", sink.started.Load())
	}
	tot := rt.Totals()
	if tot.In != 100 || tot.Delivered != 0 || tot.Dropped != 100 {
		t.Fatalf("in %d delivered %d dropped %d", tot.In, tot.Delivered, tot.Dropped)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for b := 0; b < 10; b++ {
		if !errors.Is(src.outcomes[b], ErrShutdown) {
			t.Fatalf("batch %d outcome %v, want ErrShutdown", b, src.outcomes[b])
		}
	}
	time.Sleep(3500 * time.Millisecond) // the late settles arrive and are ignored
	if got := rt.Totals(); got.Delivered != 0 {
		t.Fatalf("a settle after the deadline counted %d points delivered", got.Delivered)
	}
}

// keepingAsyncSink holds on to the points of every write it starts and
// settles none of them, like a client still encoding records when the
// deadline passes.
type keepingAsyncSink struct {
	mu   sync.Mutex
	held [][]Point
}

func (s *keepingAsyncSink) Write(context.Context, []Point) error { panic("WriteAsync expected") }
func (s *keepingAsyncSink) MaxInFlight() int                     { return 2 }
func (s *keepingAsyncSink) WriteAsync(_ context.Context, pts []Point, _ func(error)) {
	s.mu.Lock()
	s.held = append(s.held, pts)
	s.mu.Unlock()
}

// Points stay valid until their write settles: cutting off writes in flight
// at the deadline must not hand their points back to the pool, which clears
// them and gives them to the next GetPoints while the sink still reads them.
func TestDrainDeadlineLeavesPointsInFlightIntact(t *testing.T) {
	src := &outcomeSource{batches: 2, size: 10}
	sink := &keepingAsyncSink{}
	pc := &PipelineConfig{Name: "p", Nodes: []*NodeConfig{nodeCfg(KindSource, "s", src), nodeCfg(KindSink, "k", sink, "source.s")}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := run(t, pc, ctx, 50*time.Millisecond); err == nil {
		t.Fatal("drained although no write settled")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.held) != 2 {
		t.Fatalf("%d writes started, want 2", len(sink.held))
	}
	for w, pts := range sink.held {
		for i, p := range pts {
			if p.Asset != "a" || p.Tag != "t" {
				t.Fatalf("write %d point %d is %+v after the cut-off: its slice went back to the pool", w, i, p)
			}
		}
	}
}
