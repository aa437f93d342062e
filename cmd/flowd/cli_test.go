package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateReportsEveryProblemWithFileLineCol(t *testing.T) {
	dir := t.TempDir()
	bad := harness.WriteFile(t, dir, "bad.hcl", `pipeline "p" {
  source "sim" "a" {
    asets    = 3
    interval = "fast"
  }
  source "sim" "a" {}
  sink "file" "out" {
    inputs = [source.b]
    path   = "x.jsonl"
  }
}
`)
	code, _, stderr := runCLI("validate", bad)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{
		bad + ":3:5: error: Unsupported argument",
		bad + `:4:16: error: Invalid value for "interval"`,
		bad + `:6:3: error: Duplicate source "a"`,
		bad + ":8:15: error: Reference to undeclared source",
		`Did you mean "assets"?`,
		"4 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, ": error: "); n != 4 {
		t.Errorf("%d errors reported, want exactly 4:\n%s", n, stderr)
	}
	// Every example pipeline is a configuration of its own.
	setValidateEnv(t)
	files, _ := filepath.Glob(filepath.Join(harness.RepoRoot(), "pipelines", "*.hcl"))
	more, _ := filepath.Glob(filepath.Join(harness.RepoRoot(), "pipelines", "*", "*.hcl"))
	for _, f := range append(files, more...) {
		code, stdout, stderr := runCLI("validate", f)
		if code != exitOK || !strings.Contains(stdout, "valid:") {
			t.Errorf("%s does not validate: exit %d\n%s%s", f, code, stdout, stderr)
		}
	}
	if len(files) < 2 {
		t.Fatalf("only %d pipelines found", len(files))
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"run"}, {"validate", "--bogus"}} {
		if code, _, _ := runCLI(args...); code != exitUsage {
			t.Errorf("flowd %v: exit %d, want 2", args, code)
		}
	}
}

func TestFmtCheck(t *testing.T) {
	dir := t.TempDir()
	f := harness.WriteFile(t, dir, "a.hcl", "pipeline \"p\" {\nsource \"sim\" \"a\" {\nassets=1\n}\n}\n")
	if code, out, _ := runCLI("fmt", "-check", f); code != exitInvalid || !strings.Contains(out, f) {
		t.Fatalf("fmt -check on an unformatted file: exit %d %q", code, out)
	}
	if code, _, _ := runCLI("fmt", "-w", f); code != exitOK {
		t.Fatal("fmt -w failed")
	}
	b, _ := os.ReadFile(f)
	if !strings.Contains(string(b), "  source \"sim\" \"a\" {\n    assets = 1") {
		t.Fatalf("not formatted:\n%s", b)
	}
	if code, _, _ := runCLI("fmt", "-check", f); code != exitOK {
		t.Fatal("formatted file still reported")
	}
}

func TestComponentsReference(t *testing.T) {
	code, out, _ := runCLI("components")
	if code != 0 || !strings.Contains(out, "sim") || !strings.Contains(out, "file") {
		t.Fatalf("components: %d %s", code, out)
	}
	code, out, _ = runCLI("components", "source.sim")
	if code != 0 || !strings.Contains(out, "| `change_ratio` | number | `1` |") {
		t.Fatalf("components source.sim:\n%s", out)
	}
	if code, _, errs := runCLI("components", "simm"); code != exitInvalid || !strings.Contains(errs, `did you mean "sim"`) {
		t.Fatalf("misspelt component: %d %s", code, errs)
	}
}

// The golden test: a file source through to a file sink reproduces its input
// byte for byte, and flowd exits 0 by itself when the input ends.
func TestGoldenFileToFile(t *testing.T) {
	dir := t.TempDir()
	input := strings.Join([]string{
		`{"asset":"line1","tag":"temperature","value":21.5,"quality":"good","ts":"2026-11-22T10:00:00.123Z"}`,
		`{"tag":"no_asset","value":7,"quality":"good","ts":"2026-11-22T10:00:00.124Z"}`,
		`{"asset":"line1","tag":"running","value":true,"quality":"uncertain","status":1083310080,"status_name":"UncertainInitialValue","ts":"2026-11-22T10:00:00.125Z"}`,
		`{"asset":"line1","tag":"mode","value":"auto \"quoted\" ü\n","quality":"bad","status":2147483648,"status_name":"Bad","ts":"2026-11-22T10:00:00.126Z"}`,
		`{"asset":"line2","tag":"missing","value":null,"quality":"bad","ts":"2026-11-22T10:00:00.127456789Z"}`,
		`{"asset":"line2","tag":"whole","value":42.0,"quality":"good","ts":"2026-11-22T10:00:01Z","attrs":{"site":"north","unit":"°C"}}`,
		`{"asset":"line2","tag":"big","value":-9007199254740993,"quality":"good","ts":"2026-11-22T10:00:02.5Z"}`,
		`{"asset":"line2","tag":"tiny","value":1.5e-12,"quality":"good","ts":"2026-11-22T10:00:03.000001Z"}`,
	}, "\n") + "\n"
	var many strings.Builder
	many.WriteString(input)
	for i := 0; i < 5000; i++ {
		many.WriteString(`{"asset":"bulk","tag":"t` + string(rune('a'+i%26)) + `","value":` + strings.Repeat("1", 1+i%9) + `,"quality":"good","ts":"2026-11-22T11:00:00Z"}` + "\n")
	}
	in := harness.WriteFile(t, dir, "in.jsonl", many.String())
	out := filepath.Join(dir, "out.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "golden" {
  source "file" "in" {
    path = "`+in+`"
    batch_size = 100
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = "`+out+`"
  }
}
`)
	p := harness.Launch(t, pipe)
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("flowd exit %d\n%s", code, p.Stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != many.String() {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(many.String(), "\n")
		for i := range wl {
			if i >= len(gl) || gl[i] != wl[i] {
				g := "<missing>"
				if i < len(gl) {
					g = gl[i]
				}
				t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, g, wl[i])
			}
		}
		t.Fatalf("output has %d lines, want %d", len(gl), len(wl))
	}
}

type stopLine struct {
	Msg       string `json:"msg"`
	In        int64  `json:"points_in"`
	Delivered int64  `json:"points_delivered"`
	Dropped   int64  `json:"points_dropped"`
}

// SIGTERM during a run drains and exits 0; every point the source produced
// is in the output or counted as dropped — counted, not assumed.
func TestSIGTERMDrainsAndAccountsForEveryPoint(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "term" {
  source "sim" "plant" {
    assets   = 20
    tags     = 50
    interval = "10ms"
  }
  sink "file" "out" {
    inputs = [source.plant]
    path   = "`+out+`"
  }
}
`)
	p := harness.Start(t, "--drain-timeout", "10s", pipe)
	time.Sleep(2 * time.Second)
	start := time.Now()
	p.Signal(syscall.SIGTERM)
	code := p.Wait(15 * time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.Stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to stop, beyond the drain deadline", d)
	}
	var last stopLine
	sc := bufio.NewScanner(strings.NewReader(p.Stderr.String()))
	for sc.Scan() {
		var l stopLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "flowd stopped" {
			last = l
		}
	}
	if last.Msg == "" {
		t.Fatalf("no final counts logged:\n%s", p.Stderr.String())
	}
	lines := countLines(t, out)
	if last.In == 0 || lines != last.Delivered || last.In != last.Delivered+last.Dropped {
		t.Fatalf("source produced %d, output has %d lines, delivered %d, dropped %d", last.In, lines, last.Delivered, last.Dropped)
	}
	t.Logf("produced %d points, all %d in the output, %d dropped", last.In, lines, last.Dropped)
}

func countLines(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
	}
	return n
}

// Lines that do not decode are counted and reach the dead-letter sink with
// the reason and the component; the good ones go on.
func TestDeadLettersCarryReasonAndComponent(t *testing.T) {
	dir := t.TempDir()
	in := harness.WriteFile(t, dir, "in.jsonl", `{"tag":"ok1","value":1,"ts":"2026-11-22T10:00:00Z"}
{"tag":"broken",
not json at all
{"tag":"ok2","value":2,"ts":"2026-11-22T10:00:01Z"}
`)
	out, dead := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dead.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "dl" {
  dead_letter = sink.dead
  source "file" "in" {
    path = "`+in+`"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = "`+out+`"
  }
  sink "file" "dead" {
    path = "`+dead+`"
  }
}
`)
	p := harness.Launch(t, pipe)
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stderr.String())
	}
	if n := countLines(t, out); n != 2 {
		t.Fatalf("%d good points delivered, want 2", n)
	}
	b, err := os.ReadFile(dead)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d dead letters, want 2:\n%s", len(lines), b)
	}
	for i, want := range []string{`{\"tag\":\"broken\",`, "not json at all"} {
		var pt struct {
			Value string            `json:"value"`
			Attrs map[string]string `json:"attrs"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &pt); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(lines[i], want) || pt.Attrs["dead_letter_reason"] != "decode" ||
			pt.Attrs["dead_letter_component"] != "source.in" || !strings.Contains(pt.Attrs["dead_letter_error"], "in.jsonl:") {
			t.Fatalf("dead letter %d: %s", i, lines[i])
		}
	}
}
