package cov

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// readOnlyDir is a directory flowd cannot write to: a read-only tmpfs when
// root (who may write anywhere else), a mode-0555 directory otherwise.
func readOnlyDir(t *testing.T) string {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return dir
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a read-only tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// A state file that cannot be written stops `flowd run` before anything
// runs, with an error naming it, instead of a warning at exit and rc 0.
func TestUnwritableStateFileRefusesToStart(t *testing.T) {
	data := readOnlyDir(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "sim" "s" {
    count = 100
    fast  = true
  }
  transform "cov" "c" {
    inputs     = [source.s]
    state_file = "cov/state.jsonl"
  }
  sink "file" "out" {
    inputs = [transform.c]
    path   = "`+out+`"
  }
}
`)
	p := harness.Launch(t, "--data-dir", data, pipe)
	code := p.Wait(30 * time.Second)
	stderr := p.Stderr.String()
	if code == 0 {
		t.Fatalf("flowd ran with an unwritable state file (exit 0):\n%s", stderr)
	}
	if !strings.Contains(stderr, "state_file") || !strings.Contains(stderr, filepath.Join(data, "cov")) {
		t.Fatalf("the error does not name the state file:\n%s", stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("points flowed before the error")
	}
}
