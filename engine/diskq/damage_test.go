package diskq

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// lockedBuf is a log sink the queue and the test share.
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

// damaged runs one kind of damage done while flowd is stopped: a backlog of
// 300 batches of 50 points over several segments is closed cleanly, damage
// is done to the directory, and the queue is opened and drained. Every point
// must come back or be counted as dropped (reason "corrupt"), with an ERROR
// naming the file. With restart, the queue is closed and opened once more
// before it drains: the loss is counted at the first open only.
func damaged(t *testing.T, damage func(t *testing.T, dir string, ids []uint64) (victim uint64, lost int), wantEstimate, restart bool) {
	t.Helper()
	const total = 300 * 50
	dir := t.TempDir()
	var dropped atomic.Int64
	logs := &lockedBuf{}
	mod := func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		countCorrupt(&dropped)(o)
	}
	q := open(t, dir, mod)
	fillAndClose(t, q)
	ids, _ := listSegments(dir)
	if len(ids) < 4 {
		t.Fatalf("need several segments, have %d", len(ids))
	}
	victim, lost := damage(t, dir, ids)

	q = open(t, dir, mod)
	var first Counters
	if restart {
		first = q.Counters()
		counted := dropped.Load()
		q.Close()
		q = open(t, dir, mod)
		if dropped.Load() != counted {
			t.Fatalf("the loss was counted again at the next start: dropped %d → %d", counted, dropped.Load())
		}
	}
	seqs := drain(t, q)
	missing := total - len(seqs)
	if missing != lost {
		t.Fatalf("%d points did not come back, the damage destroyed %d", missing, lost)
	}
	c := q.Counters()
	c.CorruptPoints += first.CorruptPoints
	c.CorruptPointsEstimated += first.CorruptPointsEstimated
	if wantEstimate {
		// The seal is gone too: the count is an estimate, labelled as one.
		if c.CorruptPointsEstimated == 0 || c.CorruptPointsEstimated != dropped.Load() {
			t.Fatalf("estimate not labelled: counters %+v, dropped %d", c, dropped.Load())
		}
		if d := dropped.Load(); d < int64(lost)*7/10 || d > int64(lost)*13/10 {
			t.Fatalf("estimated %d lost points, %d were", d, lost)
		}
		if !strings.Contains(logs.String(), "points_lost_estimated=") {
			t.Fatalf("estimate not labelled in the log:\n%s", logs)
		}
	} else if dropped.Load() != int64(lost) || c.CorruptPoints != int64(lost) || c.CorruptPointsEstimated != 0 {
		t.Fatalf("dropped %d, counters %+v; %d points were lost", dropped.Load(), c, lost)
	}
	var errLine string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, segName(victim)) {
			errLine = l
		}
	}
	if errLine == "" {
		t.Fatalf("no ERROR naming %s:\n%s", segName(victim), logs)
	}
	if _, err := os.Stat(filepath.Join(dir, segName(victim))); err == nil {
		if _, err := os.Stat(filepath.Join(dir, corruptDir, segName(victim))); err != nil {
			t.Fatalf("damaged segment not quarantined: %v", err)
		}
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("order broken at %d", i)
		}
	}
	// Reported once: the next start finds nothing more to report.
	q.Close()
	before := dropped.Load()
	q = open(t, dir, mod)
	if n := len(drain(t, q)); n != 0 || dropped.Load() != before {
		t.Fatalf("second start: %d points, dropped %d → %d", n, before, dropped.Load())
	}
}

// pointsIn counts the points of a segment by its records.
func pointsIn(t *testing.T, dir string, id uint64) int {
	f, err := os.Open(filepath.Join(dir, segName(id)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := scanSegment(f, segHdrSize, true)
	if err != nil || r.invalid {
		t.Fatalf("scan: %v %+v", err, r)
	}
	return int(r.points)
}

func truncateTo(n int64) func(t *testing.T, dir string, ids []uint64) (uint64, int) {
	return func(t *testing.T, dir string, ids []uint64) (uint64, int) {
		v := ids[1]
		lost := pointsIn(t, dir, v)
		if err := os.Truncate(filepath.Join(dir, segName(v)), n); err != nil {
			t.Fatal(err)
		}
		return v, lost
	}
}

func TestDamageWhileStoppedIsCountedAndQuarantined(t *testing.T) {
	testDamage(t, false)
}

// A restart before the backlog drains does not count the same loss again.
func TestDamageIsCountedOnceAcrossRestarts(t *testing.T) {
	testDamage(t, true)
}

func testDamage(t *testing.T, restart bool) {
	damaged := func(t *testing.T, damage func(t *testing.T, dir string, ids []uint64) (uint64, int), wantEstimate bool) {
		t.Helper()
		damaged(t, damage, wantEstimate, restart)
	}
	for _, n := range []int64{0, 4, 8} {
		t.Run("truncated to "+string(rune('0'+n)), func(t *testing.T) { damaged(t, truncateTo(n), false) })
	}
	t.Run("truncated mid-record", func(t *testing.T) {
		damaged(t, func(t *testing.T, dir string, ids []uint64) (uint64, int) {
			v := ids[2]
			f, _ := os.Open(filepath.Join(dir, segName(v)))
			r, _ := scanSegment(f, segHdrSize, true)
			f.Close()
			// Keep the first record and half of the second.
			data, _ := os.ReadFile(filepath.Join(dir, segName(v)))
			first := segHdrSize + recHdrSize + int64(parseHeader(data[segHdrSize:]).length)
			os.Truncate(filepath.Join(dir, segName(v)), first+30)
			return v, int(r.points) - 50
		}, false)
	})
	t.Run("deleted", func(t *testing.T) {
		damaged(t, func(t *testing.T, dir string, ids []uint64) (uint64, int) {
			v := ids[1]
			lost := pointsIn(t, dir, v)
			os.Remove(filepath.Join(dir, segName(v)))
			return v, lost
		}, false)
	})
	t.Run("deleted with its seal", func(t *testing.T) {
		damaged(t, func(t *testing.T, dir string, ids []uint64) (uint64, int) {
			v := ids[1]
			lost := pointsIn(t, dir, v)
			os.Remove(filepath.Join(dir, segName(v)))
			os.Remove(filepath.Join(dir, sealName(v)))
			return v, lost
		}, true)
	})
	t.Run("header damaged, seal missing", func(t *testing.T) {
		damaged(t, func(t *testing.T, dir string, ids []uint64) (uint64, int) {
			v := ids[1]
			path := filepath.Join(dir, segName(v))
			data, _ := os.ReadFile(path)
			lost := 0
			off := int(segHdrSize)
			for off < len(data)/4 {
				off += recHdrSize + int(parseHeader(data[off:]).length)
			}
			for o := off; o < len(data); o += recHdrSize + int(parseHeader(data[o:]).length) {
				lost += int(parseHeader(data[o:]).points)
			}
			data[off+2] ^= 0xff // the length: the rest of the segment is unreadable
			os.WriteFile(path, data, 0o644)
			os.Remove(filepath.Join(dir, sealName(v)))
			return v, lost
		}, true)
	})
	// A cleanly stopped run's last segment is finished: damage in it is
	// damage, not an interrupted append.
	t.Run("last segment of a clean stop", func(t *testing.T) {
		damaged(t, func(t *testing.T, dir string, ids []uint64) (uint64, int) {
			v := ids[len(ids)-1]
			if _, ok := readCleanMark(dir); !ok {
				t.Fatal("no clean-stop mark")
			}
			lost := pointsIn(t, dir, v)
			data, _ := os.ReadFile(filepath.Join(dir, segName(v)))
			os.Truncate(filepath.Join(dir, segName(v)), int64(len(data))/2)
			f, _ := os.Open(filepath.Join(dir, segName(v)))
			r, _ := scanSegment(f, segHdrSize, true)
			f.Close()
			return v, lost - int(r.points)
		}, false)
	})
}

// A record found corrupt during replay is counted once, also when flowd
// stops before the committed position has passed it (the batches before it
// were still in flight): the next start replays those, not the loss.
func TestCorruptRecordCountedOnceAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var dropped atomic.Int64
	mod := countCorrupt(&dropped)
	q := open(t, dir, mod)
	fillAndClose(t, q)
	ids, _ := listSegments(dir)
	flipInMiddleRecord(t, filepath.Join(dir, segName(ids[1])), 30) // a payload byte: only replay finds it

	q = open(t, dir, mod)
	if dropped.Load() != 0 {
		t.Fatalf("the open already counted %d", dropped.Load())
	}
	// Read past the damage without acknowledging anything.
	for dropped.Load() == 0 {
		if _, ok := q.TryPop(); !ok {
			t.Fatal("replay ended without finding the damage")
		}
	}
	lost := dropped.Load()
	q.Close()

	q = open(t, dir, mod)
	seqs := drain(t, q)
	if dropped.Load() != lost {
		t.Fatalf("the loss was counted again: %d, then %d", lost, dropped.Load())
	}
	if int64(len(seqs))+lost != 300*50 {
		t.Fatalf("%d points replayed and %d lost, of %d", len(seqs), lost, 300*50)
	}
}

// countCorrupt is an option that adds the points dropped as corrupt to n.
func countCorrupt(n *atomic.Int64) func(*Options) {
	return func(o *Options) {
		o.OnDrop = func(k int, reason string) {
			if reason == "corrupt" {
				n.Add(int64(k))
			}
		}
	}
}

// fillAndClose writes 300 batches of 50 points (several finished, sealed
// segments) and closes q.
func fillAndClose(t *testing.T, q *Queue) {
	t.Helper()
	for i := 0; i < 300; i++ {
		push(t, q, i*50, 50)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// flipInMiddleRecord flips byte at (0-19: the header) of the first record
// past the middle of segment file path.
func flipInMiddleRecord(t *testing.T, path string, at int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := int(segHdrSize)
	for off < len(data)/2 {
		off += recHdrSize + int(parseHeader(data[off:]).length)
	}
	data[off+at] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
