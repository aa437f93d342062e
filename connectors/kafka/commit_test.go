package kafka

import (
	"sync"
	"testing"
)

func TestPartTrackerOutOfOrder(t *testing.T) {
	tr := newPartTracker(100)
	a := tr.add(105) // records 100..104
	b := tr.add(106) // a dead letter, 105
	c := tr.add(120) // 106..119
	if tr.ack(c, true) {
		t.Fatal("moved past unacknowledged spans")
	}
	if off := tr.position(); off != 100 {
		t.Fatalf("committed %d, want 100", off)
	}
	if !tr.ack(a, true) {
		t.Fatal("first span did not move the offset")
	}
	if off := tr.position(); off != 105 {
		t.Fatalf("committed %d, want 105", off)
	}
	if !tr.ack(b, true) {
		t.Fatal("second span did not move the offset")
	}
	if off := tr.position(); off != 120 {
		t.Fatalf("committed %d, want 120 (all three)", off)
	}
	if len(tr.spans) != tr.head {
		t.Fatalf("%d spans pending", len(tr.spans)-tr.head)
	}
}

func TestPartTrackerFailedSpanHolds(t *testing.T) {
	tr := newPartTracker(0)
	a := tr.add(10)
	b := tr.add(20)
	tr.ack(b, true)
	tr.ack(a, false)
	if off := tr.position(); off != 0 {
		t.Fatalf("committed %d, want 0", off)
	}
}

func TestPartTrackerRetired(t *testing.T) {
	tr := newPartTracker(0)
	a := tr.add(10)
	b := tr.add(20)
	tr.ack(a, true)
	tr.retire()
	if got := tr.position(); got != 10 {
		t.Fatalf("retire at %d, want 10", got)
	}
	if tr.ack(b, true) {
		t.Fatal("a retired tracker moved")
	}
	if off := tr.position(); off != 10 {
		t.Fatalf("committed %d after retire", off)
	}
}

func TestPartTrackerConcurrent(t *testing.T) {
	tr := newPartTracker(0)
	const n = 10000
	seqs := make(chan uint64, n)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range seqs {
				tr.ack(s, true)
			}
		}()
	}
	for i := range n {
		seqs <- tr.add(int64(i+1) * 3)
	}
	close(seqs)
	wg.Wait()
	if off := tr.position(); off != n*3 {
		t.Fatalf("committed %d, want %d", off, n*3)
	}
}

// FuzzPartTracker drives the tracker and a plain model (every span kept,
// the committed offset recomputed from scratch) with the same operations.
func FuzzPartTracker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 2, 1, 0, 3, 4})
	f.Add([]byte{0, 1, 0, 2, 0, 3, 1, 7, 1, 5, 1, 6})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const start = 1000
		tr := newPartTracker(start)
		type mspan struct {
			end  int64
			done bool
		}
		var model []mspan
		var seqs []uint64
		var acked []bool
		end := int64(start)
		retired := false
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%4, int(ops[i+1])
			switch op {
			case 0, 3: // add a span of 1..8 records
				end += int64(arg%8) + 1
				seqs = append(seqs, tr.add(end))
				acked = append(acked, false)
				model = append(model, mspan{end: end})
			case 1, 2: // ack (2: with an error) some span, once, as the engine does
				if len(seqs) == 0 {
					continue
				}
				j := arg % len(seqs)
				if acked[j] {
					continue
				}
				acked[j] = true
				tr.ack(seqs[j], op == 1)
				if !retired && op == 1 {
					model[j].done = true
				}
			}
			if arg == 255 && !retired {
				tr.retire()
				retired = true
			}
			want := int64(start)
			prefix := true
			for _, s := range model {
				if prefix && s.done {
					want = s.end
				} else {
					prefix = false
				}
			}
			if got := tr.position(); got != want {
				t.Fatalf("after op %d: committed %d, model %d", i/2, got, want)
			}
		}
	})
}
