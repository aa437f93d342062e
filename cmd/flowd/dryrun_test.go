package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// A dry run's sinks hold nothing, so cov must not save the points they
// printed as delivered: the next real run would hold those values back.
func TestDryRunSavesNoCovState(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "sim" "s" {
    count = 50
    fast  = true
  }
  transform "cov" "c" {
    inputs     = [source.s]
    state_file = "cov.jsonl"
  }
  sink "file" "out" {
    inputs = [transform.c]
    path   = "`+filepath.Join(dir, "out.jsonl")+`"
  }
}
`)
	code, stdout, stderr := runCLI("run", "--dry-run", "--dry-run-points", "5", "--data-dir", data, pipe)
	if code != exitOK || stdout == "" {
		t.Fatalf("dry run exited %d, printed %q:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(data, "cov.jsonl")); err == nil {
		t.Fatal("the dry run saved cov state for points no sink received")
	}
}
