package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// One component's problems are all reported, not just the first, and the
// buffer block's beside them.
func TestValidateReportsEveryErrorOfAComponent(t *testing.T) {
	dir := t.TempDir()
	f := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "sim" "s" {
    assets     = 0
    tags       = 0
    batch_size = 0
  }
  sink "stdout" "o" {
    inputs = [source.s]
    buffer {
      max_points = -10
    }
  }
}
`)
	code, _, stderr := runCLI("validate", f)
	if code != exitInvalid {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		f + ":3:18: error:", "assets: must be at least 1",
		f + ":4:18: error:", "tags: must be at least 1",
		f + ":5:18: error:", "batch_size: must be between 1 and",
		f + ":10:20: error: Invalid buffer max_points",
		"4 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}

// The same for transforms and sinks that check several attributes.
func TestValidateReportsEveryErrorOfEachComponent(t *testing.T) {
	dir := t.TempDir()
	f := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "sim" "s" {}
  transform "cov" "c" {
    inputs   = [source.s]
    deadband = -1
    max_tags = 0
  }
  transform "window" "w" {
    inputs     = [transform.c]
    size       = "0s"
    aggregates = ["avg", "median"]
    keep_tag   = true
  }
  sink "kafka" "k" {
    inputs               = [transform.w]
    brokers              = []
    topic                = "t"
    max_buffered_records = 0
    batch_max_bytes      = 10
  }
}
`)
	code, _, stderr := runCLI("validate", f)
	if code != exitInvalid {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"deadband: must not be negative", "max_tags: must be between 1 and 10000000",
		"size: must be positive", `aggregates: "median" is not one of`, "keep_tag: needs a single aggregate",
		"brokers: needs at least one broker", "max_buffered_records: must be between 1 and 10000000", "batch_max_bytes: must be between",
		"8 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}

// Configs that would exhaust memory at run time are refused by validate,
// with a diagnostic, not a Go stack trace.
func TestValidateRefusesConfigsThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	f := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  queue_size = 100000000
  source "sim" "s" {
    assets = 100000
    tags   = 100000
  }
  sink "stdout" "o" {
    inputs = [source.s]
  }
}
`)
	code, _, stderr := runCLI("validate", f)
	if code != exitInvalid {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		f + ":2:16: error: Invalid queue_size",
		f + ":5:14: error:", "100000 × 100000 = 10000000000 series; at most 1000000",
		"2 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
		t.Fatalf("a stack trace:\n%s", stderr)
	}
}

// A garbled or binary file gives a short report, whatever its size.
func TestValidateCapsDiagnosticsPerFile(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(7, 7))
	bin := make([]byte, 64<<10)
	for i := range bin {
		bin[i] = byte(r.Uint32())
	}
	// Text, but no HCL: many short lines, and one 64 KB line.
	var lines, long strings.Builder
	for i := 0; i < 4000; i++ {
		lines.WriteString("}{ = \"\n")
	}
	for i := 0; i < 16<<10; i++ {
		long.WriteString("{=}x")
	}
	for name, src := range map[string][]byte{"binary.hcl": bin, "lines.hcl": []byte(lines.String()), "long.hcl": []byte(long.String())} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI("validate", path)
		if code != exitInvalid {
			t.Fatalf("%s: exit %d", name, code)
		}
		if len(stderr) > 16<<10 {
			t.Errorf("%s: %d bytes of diagnostics for %d bytes of input:\n%.2000s", name, len(stderr), len(src), stderr)
		}
		if !strings.Contains(stderr, path+":") {
			t.Errorf("%s: no file:line:col in:\n%.2000s", name, stderr)
		}
	}
}
