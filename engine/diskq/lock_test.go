package diskq

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A second queue on a directory fails at once, naming the directory and the
// holder; the first keeps working, and after its Close the directory opens
// again with the backlog intact.
func TestDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	push(t, q, 0, 100)

	// A waiting flock would hang here: the lock is taken without waiting.
	_, err = Open(Options{Dir: dir})
	if err == nil {
		t.Fatal("a second queue opened the same directory")
	}
	want := fmt.Sprintf("another sink of this process (pid %d)", os.Getpid())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open: %v; want ErrInUse naming %s and %q", err, dir, want)
	}

	// The failed Open touched nothing: the holder goes on.
	push(t, q, 100, 50)
	if got := drain(t, q); len(got) != 150 || got[0] != 0 || got[149] != 149 {
		t.Fatalf("the holder read %d points after the failed Open", len(got))
	}
	push(t, q, 150, 10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// Closed: the directory is free again, the unread batch still there.
	q2 := open(t, dir, nil)
	if got := drain(t, q2); len(got) != 10 || got[0] != 150 {
		t.Fatalf("reopened after Close: read %v, want 150..159", got)
	}
	// And again, after a Close of the second.
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir, nil)
}

// TestLockHolderProcess is the process TestLockReleasedWhenHolderIsKilled
// kills: it opens the queue in DISKQ_LOCK_DIR, pushes one batch, says so on
// stdout and waits.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv("DISKQ_LOCK_DIR")
	if dir == "" {
		t.Skip("runs only as the child of TestLockReleasedWhenHolderIsKilled")
	}
	q, err := Open(Options{Dir: dir, SegmentBytes: 64 << 10})
	if err != nil {
		fmt.Println("E", err)
		os.Exit(3)
	}
	push(t, q, 0, 42)
	fmt.Println("L")
	time.Sleep(time.Minute) // killed long before
	os.Exit(4)
}

// A SIGKILLed holder leaves no stale lock: the kernel releases the flock
// when the process dies, and the next Open replays what it wrote.
func TestLockReleasedWhenHolderIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	cmd.Env = append(os.Environ(), "DISKQ_LOCK_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "L" {
		t.Fatalf("the holder did not take the lock: %q", sc.Text())
	}

	_, err = Open(Options{Dir: dir})
	want := fmt.Sprintf("another process (pid %d)", cmd.Process.Pid)
	if err == nil || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open while another process holds the directory: %v; want %q", err, want)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	q := open(t, dir, nil)
	if got := drain(t, q); len(got) != 42 {
		t.Fatalf("after the holder was killed: replayed %d points, want 42", len(got))
	}
}
