package diskq

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// batch builds n points whose int value is first..first+n-1, spread over two
// assets, with every value kind and some attrs along the way.
func batch(first, n int) []engine.Point {
	pts := engine.GetPoints(n)
	now := engine.Now()
	for i := 0; i < n; i++ {
		seq := first + i
		p := engine.Point{
			Asset: fmt.Sprintf("line%d", seq/7%2), Tag: fmt.Sprintf("tag%d", seq%5),
			Value: engine.Int(int64(seq)), TS: 1_790_000_000_000_000_000 + int64(seq)*1e6, Ingest: now,
			Quality: engine.Quality(seq % 3), Status: uint32(seq % 4),
		}
		if seq%11 == 0 {
			p.Attrs = map[string]string{"seq": fmt.Sprint(seq), "site": "north"}
		}
		pts = append(pts, p)
	}
	return pts
}

func seqOf(t testing.TB, p engine.Point) int {
	t.Helper()
	v, ok := p.Value.Int64()
	if !ok || p.Value.Kind() != engine.KindInt {
		t.Fatalf("point %+v has no int value", p)
	}
	return int(v)
}

func open(t testing.TB, dir string, mod func(*Options)) *Queue {
	t.Helper()
	o := Options{Dir: dir, SegmentBytes: 64 << 10}
	if mod != nil {
		mod(&o)
	}
	q, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func push(t testing.TB, q *Queue, first, n int) {
	t.Helper()
	if err := q.Push(context.Background(), engine.NewBatch(batch(first, n), nil)); err != nil {
		t.Fatal(err)
	}
}

// drain pops everything, checks the order and acks; it returns the sequence
// numbers seen.
func drain(t testing.TB, q *Queue) []int {
	t.Helper()
	var seqs []int
	for {
		b, ok := q.TryPop()
		if !ok {
			return seqs
		}
		for _, p := range b.Points {
			seqs = append(seqs, seqOf(t, p))
		}
		b.Ack(nil)
	}
}

func segFiles(t testing.TB, dir string) int {
	ids, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	q := open(t, t.TempDir(), nil)
	in := []engine.Point{
		{Asset: "a", Tag: "f", Value: engine.Float(21.5), TS: 1, Ingest: engine.Now()},
		{Asset: "a", Tag: "i", Value: engine.Int(-42), TS: 3, Quality: engine.Uncertain, Status: 0x40000000},
		{Asset: "", Tag: "b", Value: engine.Bool(true), TS: 2, Quality: engine.Bad, Status: 0x80000000},
		{Asset: "b", Tag: "s", Value: engine.String("hé \x00 llo"), TS: -5, Attrs: map[string]string{"k": "v", "": "x"}},
		{Asset: "b", Tag: "n", Value: engine.Null(), TS: 1 << 62},
		{Asset: "b", Tag: "u", Value: engine.Uint(math.MaxUint64), TS: 7},
		{Asset: "b", Tag: "u", Value: engine.Uint(1 << 63), TS: 8},
	}
	want := append([]engine.Point(nil), in...)
	var acked atomic.Int32
	if err := q.Push(context.Background(), engine.NewBatch(append(engine.GetPoints(len(in)), in...), func(err error) {
		if err == nil {
			acked.Add(1)
		}
	})); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != 1 {
		t.Fatal("Push did not acknowledge the batch upstream once on disk")
	}
	if s := q.Stats(); s.Points != int64(len(in)) || s.Bytes <= 0 || s.OldestIngest == 0 {
		t.Fatalf("stats %+v", s)
	}
	b, ok := q.TryPop()
	if !ok || len(b.Points) != len(want) {
		t.Fatalf("popped %v %d", ok, len(b.Points))
	}
	for i, p := range b.Points {
		w := want[i]
		if p.Asset != w.Asset || p.Tag != w.Tag || !p.Value.Equal(w.Value) || p.Value.Kind() != w.Value.Kind() ||
			p.Quality != w.Quality || p.Status != w.Status || p.TS != w.TS || fmt.Sprint(p.Attrs) != fmt.Sprint(w.Attrs) {
			t.Errorf("point %d: got %+v want %+v", i, p, w)
		}
		if w.Ingest != 0 && (p.Ingest-w.Ingest > int64(time.Millisecond) || w.Ingest-p.Ingest > int64(time.Millisecond)) {
			t.Errorf("point %d ingest %d want %d", i, p.Ingest, w.Ingest)
		}
	}
	b.Ack(nil)
	if s := q.Stats(); s.Points != 0 || s.Bytes != 0 {
		t.Fatalf("stats after ack %+v", s)
	}
}

func TestReplayResumesFromCommittedPosition(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	for i := 0; i < 200; i++ {
		push(t, q, i*100, 100)
	}
	if n := segFiles(t, dir); n < 5 {
		t.Fatalf("expected several segments, have %d", n)
	}
	// Deliver the first 120 batches, pop one more without acknowledging it.
	for i := 0; i < 120; i++ {
		b, ok := q.TryPop()
		if !ok || seqOf(t, b.Points[0]) != i*100 {
			t.Fatalf("batch %d out of order", i)
		}
		b.Ack(nil)
	}
	if _, ok := q.TryPop(); !ok {
		t.Fatal("no batch 120")
	}
	before := segFiles(t, dir)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = open(t, dir, nil)
	if s := q.Stats(); s.Points != 80*100 {
		t.Fatalf("reopened backlog %d points, want %d", s.Points, 80*100)
	}
	seqs := drain(t, q)
	if len(seqs) != 8000 || seqs[0] != 12000 {
		t.Fatalf("replayed %d points starting at %v", len(seqs), seqs[:1])
	}
	for i, s := range seqs {
		if s != 12000+i {
			t.Fatalf("replay out of order at %d: %d", i, s)
		}
	}
	if seals, _ := filepath.Glob(filepath.Join(dir, "*"+sealSuffix)); len(seals) > 0 {
		t.Errorf("seals of delivered segments left behind: %v", seals)
	}
	if after := segFiles(t, dir); after > 1 || before < 2 {
		t.Fatalf("segments: %d before, %d after everything was delivered", before, after)
	}
	q.Close()
	q = open(t, dir, nil)
	if s := q.Stats(); s.Points != 0 {
		t.Fatalf("delivered points came back: %+v", s)
	}
}

func TestFailedAckIsReplayed(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	push(t, q, 0, 10)
	push(t, q, 10, 10)
	b1, _ := q.TryPop()
	b2, _ := q.TryPop()
	b2.Ack(nil)                // delivered out of order...
	b1.Ack(engine.ErrShutdown) // ...but the first was not: both replay
	q.Close()
	q = open(t, dir, nil)
	if seqs := drain(t, q); len(seqs) != 20 || seqs[0] != 0 {
		t.Fatalf("replayed %v", seqs)
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	for i := 0; i < 10; i++ {
		push(t, q, i*10, 10)
	}
	wseg := filepath.Join(dir, segName(q.wseg.id))
	q.Close()
	// A run killed mid-append leaves neither the clean-stop mark nor a seal
	// of its last segment, and a header promising more than was written.
	os.Remove(filepath.Join(dir, cleanName))
	os.Remove(filepath.Join(dir, sealName(q.wseg.id)))
	rec := (&Queue{}).encode(batch(100, 10))
	f, err := os.OpenFile(wseg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(rec[:len(rec)/2])
	f.Close()

	q = open(t, dir, nil)
	if c := q.Counters(); c.TornBytes != int64(len(rec)/2) {
		t.Fatalf("torn bytes %d, want %d", c.TornBytes, len(rec)/2)
	}
	push(t, q, 100, 10)
	seqs := drain(t, q)
	if len(seqs) != 110 {
		t.Fatalf("got %d points after the torn tail, want 110", len(seqs))
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("order broken at %d: %d", i, s)
		}
	}
}

func TestCorruptSegmentSkippedAndReported(t *testing.T) {
	t.Run("payload", func(t *testing.T) { corruptSegment(t, 30) })
	t.Run("header", func(t *testing.T) { corruptSegment(t, 1) })
}

// corruptSegment damages the record in the middle of the second segment at
// byte at of the record (0-19: its header).
func corruptSegment(t *testing.T, at int) {
	dir := t.TempDir()
	var dropped atomic.Int64
	mod := countCorrupt(&dropped)
	q := open(t, dir, mod)
	fillAndClose(t, q)
	ids, _ := listSegments(dir)
	if len(ids) < 4 {
		t.Fatalf("need several segments, have %d", len(ids))
	}
	flipInMiddleRecord(t, filepath.Join(dir, segName(ids[1])), at)
	if _, ok := readSeal(dir, ids[1]); !ok {
		t.Fatal("the finished segment has no seal")
	}

	q = open(t, dir, mod)
	seqs := drain(t, q)
	lost := 300*50 - len(seqs)
	if lost <= 0 || lost >= 300*50/2 {
		t.Fatalf("lost %d of %d points", lost, 300*50)
	}
	if dropped.Load() != int64(lost) {
		t.Fatalf("dropped counter %d, points missing %d", dropped.Load(), lost)
	}
	if c := q.Counters(); c.CorruptSegments != 1 || c.CorruptPoints != int64(lost) {
		t.Fatalf("counters %+v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, corruptDir, segName(ids[1]))); err != nil {
		t.Fatalf("corrupt segment not isolated: %v", err)
	}
	// Order holds, and nothing outside the corrupt segment is missing: the
	// gap is one contiguous run.
	gaps := 0
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("order broken at %d", i)
		}
		if seqs[i] != seqs[i-1]+1 {
			gaps++
		}
	}
	if gaps != 1 || seqs[0] != 0 || seqs[len(seqs)-1] != 300*50-1 {
		t.Fatalf("%d gaps, first %d last %d", gaps, seqs[0], seqs[len(seqs)-1])
	}
}

func TestWhenFull(t *testing.T) {
	const recPoints = 100
	recSize := int64(len((&Queue{}).encode(batch(0, recPoints))))
	limit := recSize*5 + recSize/2 // room for five records

	t.Run("drop_newest", func(t *testing.T) {
		var dropped atomic.Int64
		q := open(t, t.TempDir(), func(o *Options) {
			o.MaxBytes, o.WhenFull = limit, "drop_newest"
			o.OnDrop = func(n int, _ string) { dropped.Add(int64(n)) }
		})
		for i := 0; i < 8; i++ {
			push(t, q, i*recPoints, recPoints)
		}
		seqs := drain(t, q)
		if len(seqs) != 5*recPoints || seqs[len(seqs)-1] != 5*recPoints-1 || dropped.Load() != 3*recPoints {
			t.Fatalf("kept %d (last %d), dropped %d", len(seqs), seqs[len(seqs)-1], dropped.Load())
		}
	})
	t.Run("drop_oldest", func(t *testing.T) {
		var dropped atomic.Int64
		q := open(t, t.TempDir(), func(o *Options) {
			o.MaxBytes, o.WhenFull = limit, "drop_oldest"
			o.OnDrop = func(n int, _ string) { dropped.Add(int64(n)) }
		})
		for i := 0; i < 8; i++ {
			push(t, q, i*recPoints, recPoints)
		}
		if s := q.Stats(); s.Bytes > limit {
			t.Fatalf("backlog %d bytes above the limit %d", s.Bytes, limit)
		}
		seqs := drain(t, q)
		if len(seqs) != 5*recPoints || seqs[0] != 3*recPoints || dropped.Load() != 3*recPoints {
			t.Fatalf("kept %d (first %d), dropped %d", len(seqs), seqs[0], dropped.Load())
		}
	})
	t.Run("block", func(t *testing.T) {
		q := open(t, t.TempDir(), func(o *Options) { o.MaxBytes, o.WhenFull = limit, "block" })
		for i := 0; i < 5; i++ {
			push(t, q, i*recPoints, recPoints)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := q.Push(ctx, engine.NewBatch(batch(500, recPoints), nil)); err == nil {
			t.Fatal("Push into a full buffer did not block")
		}
		done := make(chan error, 1)
		go func() { done <- q.Push(context.Background(), engine.NewBatch(batch(500, recPoints), nil)) }()
		b, _ := q.TryPop()
		b.Ack(nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if seqs := drain(t, q); len(seqs) != 5*recPoints || seqs[len(seqs)-1] != 6*recPoints-1 {
			t.Fatalf("after unblocking: %d points", len(seqs))
		}
	})
}

func TestPopWaitsAndEnds(t *testing.T) {
	q := open(t, t.TempDir(), nil)
	got := make(chan int, 1)
	go func() {
		b, ok := q.Pop(context.Background())
		if ok {
			got <- len(b.Points)
			b.Ack(nil)
		}
		close(got)
	}()
	time.Sleep(10 * time.Millisecond)
	push(t, q, 0, 3)
	if n := <-got; n != 3 {
		t.Fatalf("Pop returned %d points", n)
	}
	q.CloseInput()
	if _, ok := q.Pop(context.Background()); ok {
		t.Fatal("Pop after CloseInput on an empty queue returned a batch")
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	payload := encodePoints(nil, batch(0, 20))
	for cut := 0; cut < len(payload); cut++ {
		if _, err := decodePoints(nil, payload[:cut], 20, nil); err == nil {
			t.Fatalf("truncated payload (%d of %d bytes) decoded", cut, len(payload))
		}
	}
	if _, err := decodePoints(nil, payload, 21, nil); err == nil {
		t.Fatal("wrong count decoded")
	}
}

// Replaying a backlog reads it record by record: opening a large backlog and
// reading from it costs a few buffers, not the backlog.
func TestReplayDoesNotLoadTheBacklog(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, func(o *Options) { o.Fsync = "never"; o.SegmentBytes = 8 << 20 })
	const batches, per = 1000, 1000
	for i := 0; i < batches; i++ {
		push(t, q, i*per, per)
	}
	onDisk := q.Stats().Bytes
	q.Close()

	var before, after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	q = open(t, dir, func(o *Options) { o.Fsync = "never"; o.SegmentBytes = 8 << 20 })
	for i := 0; i < 100; i++ {
		b, ok := q.TryPop()
		if !ok {
			t.Fatal("backlog ended early")
		}
		b.Ack(nil)
	}
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("backlog %d points, %.1f MiB on disk; heap grew %.1f MiB after opening it and reading 100 batches", batches*per, float64(onDisk)/(1<<20), float64(grown)/(1<<20))
	if s := q.Stats(); s.Points != (batches-100)*per {
		t.Fatalf("backlog %d points after reading 100 batches", s.Points)
	}
	if grown > 8<<20 {
		t.Fatalf("heap grew by %d bytes for a %d-byte backlog", grown, onDisk)
	}
}

// A power cut loses whatever the disk had not stored yet: the last segment
// ends anywhere, possibly followed by zeros. Every record wholly before the
// cut must replay, nothing after it, and the queue must stay usable.
func TestPowerCutAtAnyByte(t *testing.T) {
	src := t.TempDir()
	q := open(t, src, nil)
	var ends []int64 // end offset of each record in the last segment
	for i := 0; i < 6; i++ {
		push(t, q, i*10, 10)
		ends = append(ends, q.wseg.size)
	}
	seg := segName(q.wseg.id)
	q.Close()
	data, err := os.ReadFile(filepath.Join(src, seg))
	if err != nil {
		t.Fatal(err)
	}
	for cut := ends[2] - 3; cut <= int64(len(data)); cut += 11 {
		for _, zeros := range []int{0, 4096} {
			dir := t.TempDir()
			img := append(append([]byte(nil), data[:cut]...), make([]byte, zeros)...)
			if err := os.WriteFile(filepath.Join(dir, seg), img, 0o644); err != nil {
				t.Fatal(err)
			}
			// A record is whole when its bytes survived: wholly before the
			// cut, or ending in zeros the zero fill happens to restore.
			whole := 0
			for _, e := range ends {
				if e <= cut || (e <= cut+int64(zeros) && !bytes.ContainsFunc(data[cut:e], func(r rune) bool { return r != 0 })) {
					whole++
				}
			}
			q := open(t, dir, nil)
			push(t, q, 1000, 10) // appends after recovery work
			seqs := drain(t, q)
			if len(seqs) != whole*10+10 {
				t.Fatalf("cut at %d (+%d zeros): %d points back, want %d", cut, zeros, len(seqs), whole*10+10)
			}
			for i := 0; i < whole*10; i++ {
				if seqs[i] != i {
					t.Fatalf("cut at %d: point %d is %d", cut, i, seqs[i])
				}
			}
			if seqs[len(seqs)-1] != 1009 {
				t.Fatalf("cut at %d: the new batch is missing", cut)
			}
			q.Close()
		}
	}
}

// A random mix of pushes, pops, acks, failed acks and reopenings behaves
// like an in-memory model: in order, at least once, nothing lost.
func TestRandomOperationsAgainstModel(t *testing.T) {
	dir := t.TempDir()
	opts := func(o *Options) { o.SegmentBytes = 4 << 10; o.Fsync = "never" }
	q := open(t, dir, opts)
	r := rand.New(rand.NewPCG(1, 2))
	next := 0
	var model []int // sequence numbers of points not yet committed, in order
	type held struct {
		b    engine.Batch
		seqs []int
	}
	var popped []held
	committed := map[int]bool{}
	for step := 0; step < 1000; step++ {
		switch op := r.IntN(10); {
		case op < 4:
			n := 1 + r.IntN(50)
			push(t, q, next, n)
			for i := 0; i < n; i++ {
				model = append(model, next+i)
			}
			next += n
		case op < 7:
			b, ok := q.TryPop()
			if !ok {
				continue
			}
			h := held{b: b}
			for _, p := range b.Points {
				h.seqs = append(h.seqs, seqOf(t, p))
			}
			popped = append(popped, h)
		case op < 9:
			if len(popped) == 0 {
				continue
			}
			i := r.IntN(len(popped))
			for _, s := range popped[i].seqs {
				committed[s] = true
			}
			popped[i].b.Ack(nil)
			popped = append(popped[:i], popped[i+1:]...)
		default:
			// Restart: unacknowledged batches come back, in order, from the
			// oldest uncommitted record on.
			for _, h := range popped {
				h.b.Ack(engine.ErrShutdown)
			}
			popped = nil
			q.Close()
			q = open(t, dir, opts)
			var want []int
			for _, s := range model {
				if !committed[s] {
					want = append(want, s)
				}
			}
			got := map[int]bool{}
			s := q.Stats()
			seqs := drainNoAck(t, q)
			for _, v := range seqs {
				got[v] = true
			}
			for _, w := range want {
				if !got[w] {
					t.Fatalf("step %d: point %d lost across a restart", step, w)
				}
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("step %d: replay out of order", step)
				}
			}
			if s.Points != int64(len(seqs)) {
				t.Fatalf("step %d: stats say %d points, replay has %d", step, s.Points, len(seqs))
			}
			q.Close()
			q = open(t, dir, opts)
			model = seqs
			committed = map[int]bool{}
		}
	}
}

// drainNoAck reads the whole backlog without committing it.
func drainNoAck(t *testing.T, q *Queue) []int {
	var seqs []int
	for {
		b, ok := q.TryPop()
		if !ok {
			return seqs
		}
		for _, p := range b.Points {
			seqs = append(seqs, seqOf(t, p))
		}
		b.Ack(engine.ErrShutdown)
	}
}

func TestIntervalSyncsAnIdleTail(t *testing.T) {
	q := open(t, t.TempDir(), func(o *Options) { o.Fsync = "interval"; o.SyncInterval = 300 * time.Millisecond })
	push(t, q, 0, 10) // synced at once: the first sync is due
	push(t, q, 10, 10)
	q.wmu.Lock()
	pending := q.unsynced
	q.wmu.Unlock()
	if !pending {
		t.Fatal("the second append within the interval was synced at once")
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		q.wmu.Lock()
		pending = q.unsynced
		q.wmu.Unlock()
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the idle tail was never fsynced")
}
