package diskq

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func segmentBytes(records ...[]byte) []byte {
	b := []byte(segMagic)
	for _, r := range records {
		b = append(b, r...)
	}
	return b
}

func record(first, n int) []byte {
	return append([]byte(nil), (&Queue{}).encode(batch(first, n))...)
}

// FuzzSegmentReader puts arbitrary bytes after the magic of a segment that
// sits between two valid ones, and as the last segment. Opening and replaying
// must never panic or hang, and every point of the valid segments must come
// back, in order.
func FuzzSegmentReader(f *testing.F) {
	good := record(500, 20)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(append(append([]byte(nil), good...), good[:25]...))
	flipped := append([]byte(nil), good...)
	flipped[30] ^= 1
	f.Add(flipped)
	f.Add(make([]byte, 64))
	f.Add([]byte{})
	head := segmentBytes(record(0, 50), record(50, 50))
	tail := segmentBytes(record(1000, 50))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, last := range []bool{false, true} {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, segName(1)), head, 0o644)
			mid := append([]byte(segMagic), data...)
			os.WriteFile(filepath.Join(dir, segName(2)), mid, 0o644)
			if !last {
				os.WriteFile(filepath.Join(dir, segName(3)), tail, 0o644)
			}
			q, err := Open(Options{Dir: dir, Fsync: "never", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int64]bool{}
			var prev int64 = -1
			for {
				b, ok := q.TryPop()
				if !ok {
					break
				}
				for _, p := range b.Points {
					if v, ok := p.Value.Int64(); ok && (v < 100 || (v >= 1000 && v < 1050)) {
						if v <= prev {
							t.Fatalf("valid points out of order: %d after %d", v, prev)
						}
						prev = v
						seen[v] = true
					}
				}
				b.Ack(nil)
			}
			want := 100
			if !last {
				want += 50
			}
			if len(seen) != want {
				t.Fatalf("last=%v: %d of the %d valid points replayed", last, len(seen), want)
			}
			if s := q.Stats(); s.Points != 0 || s.Bytes != 0 {
				t.Fatalf("drained queue reports %+v", s)
			}
			q.Close()
		}
	})
}

// FuzzDecode feeds arbitrary payloads to the point decoder.
func FuzzDecode(f *testing.F) {
	f.Add(encodePoints(nil, batch(0, 5)), 5)
	f.Add(encodePoints(nil, batch(10, 1)), 1)
	f.Add([]byte{0x13, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, payload []byte, count int) {
		pts, err := decodePoints(nil, payload, count, map[string]string{})
		if err != nil {
			return
		}
		if len(pts) != count {
			t.Fatalf("decoded %d points, asked for %d", len(pts), count)
		}
		again, err := decodePoints(nil, encodePoints(nil, pts), count, nil)
		if err != nil || len(again) != count {
			t.Fatalf("re-encoding a decoded payload fails: %v", err)
		}
	})
}
