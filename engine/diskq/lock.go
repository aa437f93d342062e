package diskq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrInUse is returned by Open when another queue holds the directory.
var ErrInUse = errors.New("disk buffer directory in use")

const lockName = "lock"

// lockDir takes the directory's exclusive lock: flock on dir/lock, without
// waiting. flock belongs to the open file, so a second Open fails in this
// process as well as in another, and the kernel releases it when the holder
// exits however it ends (a SIGKILL leaves no stale lock). The holder's pid is
// written into the file for the error a second opener reports.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("diskq: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUse(dir, path)
		}
		return nil, fmt.Errorf("diskq: lock %s: %w", path, err)
	}
	// The pid is informational: the lock is the flock, not the contents.
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(pid), 0)
	}
	return f, nil
}

// inUse names who holds dir, as far as its lock file tells.
func inUse(dir, path string) error {
	holder := "another process (pid unknown)"
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			holder = fmt.Sprintf("another process (pid %d)", pid)
			if pid == os.Getpid() {
				holder = fmt.Sprintf("another sink of this process (pid %d)", pid)
			}
		}
	}
	return fmt.Errorf("diskq: %s is held by %s: two disk buffers cannot share a directory: %w", dir, holder, ErrInUse)
}

// unlockDir releases the lock taken by lockDir. The pid is left in the
// file: a stale pid is harmless, since only the flock counts.
func unlockDir(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}
