package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// Two flowd processes on one data directory: the second finds the disk
// buffer directory locked, says by whom and exits non-zero before anything
// of it runs; the first never notices and delivers its whole backlog.
func TestDiskBufferDirLockedBySecondProcess(t *testing.T) {
	concurrent(t)
	const n = 20_000
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	out, unblock := block(t, dir)
	in := writePoints(t, dir, n)
	cfg := harness.WriteFile(t, dir, "first.hcl", bufPipeline(bufCase{source: fileSource(in), out: out, maxSize: "64MiB", whenFull: "block"}))
	first := harness.Start(t, "--data-dir", dataDir, cfg)
	harness.Eventually(t, 60*time.Second, func() bool {
		_, c := sinkStatus(t, first)
		return c.Buffer.Points == n
	}, "the first flowd's disk buffer to hold all %d points", n)

	// The same pipeline writing elsewhere: only the buffer directory is shared.
	out2 := filepath.Join(dir, "second.jsonl")
	cfg2 := harness.WriteFile(t, dir, "second.hcl", bufPipeline(bufCase{source: fileSource(in), out: out2, maxSize: "64MiB", whenFull: "block"}))
	second := harness.Launch(t, "--data-dir", dataDir, cfg2)
	code := second.Wait(30 * time.Second)
	if code <= 0 {
		t.Fatalf("the second flowd: exit code %d, want non-zero", code)
	}
	bufDir := filepath.Join(dataDir, "buffers", "buf", "out")
	stderr := second.Stderr.String()
	want := fmt.Sprintf("%s is held by another process (pid %d)", bufDir, first.Cmd.Process.Pid)
	if !strings.Contains(stderr, want) {
		t.Fatalf("the second flowd's error does not say %q:\n%s", want, stderr)
	}
	if strings.Contains(stderr, "flowd running") {
		t.Fatalf("the second flowd started running:\n%s", stderr)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Fatalf("the second flowd wrote its output (%v)", err)
	}

	// The first one's backlog is whole: every point delivered once, in order.
	unblock()
	harness.Eventually(t, 60*time.Second, func() bool {
		_, c := sinkStatus(t, first)
		return c.Buffer.Points == 0 && len(readOut(t, out)) >= n
	}, "the first flowd to deliver its backlog")
	seqs := readOut(t, out)
	if len(seqs) != n {
		t.Fatalf("delivered %d points, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("point %d is %d: lost or out of order", i, s)
		}
	}
	if d := metric(t, first, "flowd_points_dropped_total"); d != 0 {
		t.Fatalf("%v points dropped", d)
	}
	if code := first.Stop(30 * time.Second); code != 0 {
		t.Errorf("the first flowd: exit code %d", code)
	}
}
