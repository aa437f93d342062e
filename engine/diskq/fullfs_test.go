package diskq

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

// fullFS mounts a 1 MiB tmpfs of its own: a real file system that fills up.
func fullFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// A buffer stopped on a full disk starts and drains its backlog without
// needing new space first; the drain frees the space appends need.
func TestFullDiskStartsAndDrains(t *testing.T) {
	mnt := fullFS(t)
	dir := filepath.Join(mnt, "buf")
	q := open(t, dir, nil)
	pushed := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := q.Push(ctx, engine.NewBatch(batch(pushed, 50), nil))
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
		pushed += 50
	}
	// Whatever is left goes to another file: not even a segment's magic fits.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	q.Close() // may fail to leave its mark: the disk is full

	q2, err := Open(Options{Dir: dir, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer q2.Close()
	seqs := drain(t, q2)
	if len(seqs) != pushed {
		t.Fatalf("drained %d of %d points", len(seqs), pushed)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("point %d is %d", i, s)
		}
	}
	// The drain freed the space: appends work again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q2.Push(ctx, engine.NewBatch(batch(pushed, 50), nil)); err != nil {
		t.Fatalf("push after the drain: %v", err)
	}
	if got := drain(t, q2); len(got) != 50 || got[0] != pushed {
		t.Fatalf("after the drain: %v", got)
	}
}
