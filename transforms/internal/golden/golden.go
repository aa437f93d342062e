// Package golden runs a transform's golden cases through the real flowd
// binary: testdata/<case>/pipeline.hcl reads var.input (the case's
// input.jsonl) with the file source and writes var.output with the file sink;
// the output must equal expected.jsonl line for line.
package golden

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// Run runs every case under testdata.
func Run(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "*", "pipeline.hcl"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases under testdata (%v)", err)
	}
	bin := harness.Flowd(t)
	for _, pipeline := range cases {
		dir := filepath.Dir(pipeline)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			RunCase(t, bin, dir)
		})
	}
}

// RunCase runs one case directory and compares its output.
func RunCase(t *testing.T, bin, dir string) {
	t.Helper()
	tmp := t.TempDir()
	input, _ := filepath.Abs(filepath.Join(dir, "input.jsonl"))
	out := filepath.Join(tmp, "out.jsonl")
	src, err := os.ReadFile(filepath.Join(dir, "pipeline.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--http", "off", "--quiet", "--log-format", "text", "--data-dir", filepath.Join(tmp, "data"),
		"--var", "input=" + input, "--var", "output=" + out}
	if strings.Contains(string(src), `variable "state"`) {
		args = append(args, "--var", "state="+filepath.Join(tmp, "state"))
	}
	args = append(args, filepath.Join(dir, "pipeline.hcl"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("flowd run: %v\n%s", err, stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	Compare(t, lines(got), lines(want), stderr.String())
}

func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Compare reports every differing line.
func Compare(t *testing.T, got, want []string, log string) {
	t.Helper()
	bad := len(got) != len(want)
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			bad = true
			t.Errorf("line %d:\n got  %s\n want %s", i+1, g, w)
		}
	}
	if bad {
		t.Errorf("got %d lines, want %d\nflowd log:\n%s", len(got), len(want), log)
	}
}
