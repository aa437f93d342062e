package diskq

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// TestCrashWriterProcess is the process TestSIGKILLMidAppend kills: it appends
// numbered batches as fast as it can and delivers (prints) them slowly, so a
// backlog builds, reporting each acknowledgement on stdout.
func TestCrashWriterProcess(t *testing.T) {
	dir := os.Getenv("DISKQ_CRASH_DIR")
	if dir == "" {
		t.Skip("runs only as the child of TestSIGKILLMidAppend")
	}
	first, _ := strconv.Atoi(os.Getenv("DISKQ_CRASH_FIRST"))
	q, err := Open(Options{Dir: dir, SegmentBytes: 64 << 10, Fsync: os.Getenv("DISKQ_CRASH_FSYNC")})
	if err != nil {
		fmt.Println("E", err)
		os.Exit(3)
	}
	go func() {
		for {
			b, ok := q.Pop(context.Background())
			if !ok {
				return
			}
			v, _ := b.Points[0].Value.Int64()
			fmt.Printf("D %d %d\n", v, len(b.Points))
			b.Ack(nil)
			time.Sleep(time.Millisecond)
		}
	}()
	r := rand.New(rand.NewPCG(uint64(first), 7))
	for seq := first; ; {
		n := 1 + r.IntN(400)
		s := seq
		err := q.Push(context.Background(), engine.NewBatch(batch(seq, n), func(err error) {
			if err == nil {
				fmt.Printf("A %d %d\n", s, n)
			}
		}))
		if err != nil {
			fmt.Println("E", err)
			os.Exit(3)
		}
		seq += n
	}
}

func TestSIGKILLMidAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	for _, fsync := range []string{"batch", "never"} {
		t.Run("fsync="+fsync, func(t *testing.T) {
			dir := t.TempDir()
			acked := map[int]bool{}
			delivered := map[int]bool{}
			for round := 0; round < 6; round++ {
				// Each run numbers from its own range: what a killed run
				// wrote without acknowledging may still replay.
				next := round * 10_000_000
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterProcess$")
				cmd.Env = append(os.Environ(), "DISKQ_CRASH_DIR="+dir, "DISKQ_CRASH_FIRST="+strconv.Itoa(next), "DISKQ_CRASH_FSYNC="+fsync)
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				time.AfterFunc(time.Duration(150+rand.IntN(300))*time.Millisecond, func() { cmd.Process.Kill() })
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					var kind string
					var first, n int
					if _, err := fmt.Sscanf(sc.Text(), "%s %d %d", &kind, &first, &n); err != nil {
						if len(sc.Text()) > 0 && sc.Text()[0] == 'E' {
							t.Fatalf("child: %s", sc.Text())
						}
						continue
					}
					for s := first; s < first+n; s++ {
						if kind == "A" {
							acked[s] = true
						} else {
							delivered[s] = true
						}
					}
				}
				cmd.Wait()
			}
			if len(acked) == 0 {
				t.Fatal("the child acknowledged nothing")
			}
			q := open(t, dir, func(o *Options) { o.Fsync = fsync })
			replay := drain(t, q)
			for i := 1; i < len(replay); i++ {
				if replay[i] <= replay[i-1] {
					t.Fatalf("replay out of order at %d: %d after %d", i, replay[i], replay[i-1])
				}
			}
			for _, s := range replay {
				delivered[s] = true
			}
			lost := 0
			for s := range acked {
				if !delivered[s] {
					lost++
				}
			}
			t.Logf("%d points acknowledged over 6 kills, %d replayed at the end, torn bytes cut on the last open: %d", len(acked), len(replay), q.Counters().TornBytes)
			if lost > 0 {
				t.Fatalf("%d acknowledged points lost", lost)
			}
		})
	}
}
