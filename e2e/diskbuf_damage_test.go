package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// Damage done to a disk buffer while flowd is stopped: a segment cut to 0
// bytes and another deleted. Every point that does not come back is counted
// in flowd_points_dropped_total{reason="corrupt"}, each file is named in an
// ERROR, and the cut one is quarantined.
func TestDiskBufferDamageWhileStoppedIsCounted(t *testing.T) {
	concurrent(t)
	const n = 100_000
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	out, unblock := block(t, dir)
	fillDiskBuffer(t, dir, dataDir, out, "2MiB", n)
	unblock()

	bufDir := filepath.Join(dataDir, "buffers", "buf", "out")
	segs, _ := filepath.Glob(filepath.Join(bufDir, "*.seg"))
	if len(segs) < 4 {
		t.Fatalf("need at least 4 segments, have %d", len(segs))
	}
	cut, gone := segs[1], segs[2]
	if err := os.Truncate(cut, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}

	p, seqs, lost := replayDamaged(t, dir, dataDir, out, "2MiB", n)
	for _, f := range []string{cut, gone} {
		if len(levelLines(p.Stderr.String(), "ERROR", filepath.Base(f))) == 0 {
			t.Errorf("no ERROR names %s", filepath.Base(f))
		}
	}
	if _, err := os.Stat(filepath.Join(bufDir, "corrupt", filepath.Base(cut))); err != nil {
		t.Errorf("the cut segment is not quarantined: %v", err)
	}
	t.Logf("%s cut to 0 bytes and %s deleted: %d points lost and counted, %d delivered", filepath.Base(cut), filepath.Base(gone), lost, len(seqs))
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// A disk buffer that filled its file system (ENOSPC) starts again and
// drains without new space being freed first.
func TestDiskBufferFullFilesystemStartsAndDrains(t *testing.T) {
	concurrent(t)
	dataDir := mountTmpfs(t, "2m")
	dir := t.TempDir()

	const n = 300_000
	out, unblock := block(t, dir)
	in := writePoints(t, dir, n)
	cfg := harness.WriteFile(t, dir, "fill.hcl", bufPipeline(bufCase{source: fileSource(in), out: out, maxSize: "1GiB", whenFull: "block"}))
	p := harness.Start(t, "--data-dir", dataDir, cfg)
	harness.Eventually(t, 60*time.Second, func() bool {
		return strings.Contains(p.Stderr.String(), "no space left on device")
	}, "the disk buffer to fill the file system")
	_, c := sinkStatus(t, p)
	buffered := int(c.Buffer.Points)
	// Whatever space is left goes to another file.
	f, err := os.Create(filepath.Join(dataDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	// Stopped as a full disk leaves it: killed (a SIGTERM waits for the
	// drain deadline while the source's append retries).
	p.Kill()
	var st syscall.Statfs_t
	syscall.Statfs(dataDir, &st)
	if st.Bavail != 0 {
		t.Fatalf("%d blocks still free", st.Bavail)
	}
	unblock()

	replay := harness.WriteFile(t, dir, "replay.hcl", bufPipeline(bufCase{source: keepAlive, out: out, maxSize: "1GiB", whenFull: "block"}))
	p = harness.Start(t, "--data-dir", dataDir, replay)
	harness.Eventually(t, 60*time.Second, func() bool { return len(readOut(t, out)) >= buffered }, "the backlog of %d points to drain", buffered)
	seqs := readOut(t, out)
	for i, s := range seqs {
		if s != i {
			t.Fatalf("point %d is %d", i, s)
		}
	}
	if len(seqs) < buffered || buffered == 0 {
		t.Fatalf("%d of %d points delivered", len(seqs), buffered)
	}
	t.Logf("%d points buffered when the file system filled; all delivered after a restart on the full disk", buffered)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// After a clean stop (SIGTERM), damage in the last segment is damage, not
// an interrupted append: its points are counted, not only its bytes.
func TestDiskBufferDamageAfterCleanStopIsCounted(t *testing.T) {
	concurrent(t)
	const n = 100_000
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	out, unblock := block(t, dir)
	in := writePoints(t, dir, n)
	cfg := harness.WriteFile(t, dir, "fill.hcl", bufPipeline(bufCase{source: fileSource(in), out: out, maxSize: "2MiB", whenFull: "block"}))
	p := harness.Start(t, "--data-dir", dataDir, cfg)
	harness.Eventually(t, 60*time.Second, func() bool {
		_, c := sinkStatus(t, p)
		return c.Buffer.Points == int64(n)
	}, "the disk buffer to hold all %d points", n)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	unblock()

	bufDir := filepath.Join(dataDir, "buffers", "buf", "out")
	if _, err := os.Stat(filepath.Join(bufDir, "clean")); err != nil {
		t.Fatalf("no clean-stop mark: %v", err)
	}
	segs, _ := filepath.Glob(filepath.Join(bufDir, "*.seg"))
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	if err != nil || st.Size() < 4096 {
		t.Fatalf("last segment %v: %v", st, err)
	}
	if err := os.Truncate(last, st.Size()/2); err != nil {
		t.Fatal(err)
	}

	p, _, lost := replayDamaged(t, dir, dataDir, out, "2MiB", n)
	if strings.Contains(p.Stderr.String(), "interrupted append") {
		t.Error("damage after a clean stop taken for an interrupted append")
	}
	t.Logf("last segment %s cut in half after a clean stop: %d points lost and counted", filepath.Base(last), lost)
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
