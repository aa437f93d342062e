package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/flowd/flowd/engine"
)

func testStatus() engine.Status {
	return engine.Status{Pipelines: []engine.PipelineStatus{
		{Name: "demo", Ready: true, LatencySLOms: 2000, Components: []engine.ComponentStatus{
			{ID: "source.plant", Kind: engine.KindSource, State: engine.StateConnected, RateOut: 42},
			{ID: "sink.local", Kind: engine.KindSink, State: engine.StateConnected, RateOut: 42,
				Buffer: &engine.BufferStatus{Points: 3}, Latency: &engine.LatencyStatus{P99ms: 212, Count: 10}},
		}},
		{Name: "plant-to-cloud", Ready: false, LatencySLOms: 10000, Components: []engine.ComponentStatus{
			{ID: "source.line1", Kind: engine.KindSource, State: engine.StateConnected, RateOut: 12500},
			{ID: "sink.kafka", Kind: engine.KindSink, State: engine.StateConnecting, RateOut: 0,
				LastError: "dial tcp 127.0.0.1:9092:\nconnection refused",
				Buffer:    &engine.BufferStatus{Points: 250000}, Latency: &engine.LatencyStatus{}},
			{ID: "sink.cassandra", Kind: engine.KindSink, State: engine.StateFailing, RateOut: 0,
				LastError: "no hosts available", Buffer: &engine.BufferStatus{}},
		}},
	}}
}

func TestStatusLinesPerPipeline(t *testing.T) {
	lines := statusLines(testStatus(), 200)
	want := []string{
		"demo            in     42/s  out     42/s  p99  212ms  backlog      3  ok",
		"plant-to-cloud  in    12k/s  out      0/s  p99    0ms  backlog   250k  ✗ 2 failing",
		"                ✗ sink.kafka reconnecting: dial tcp 127.0.0.1:9092: connection refused",
		"                ✗ sink.cassandra failing: no hosts available",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestStatusLinesFitTheTerminal(t *testing.T) {
	for _, w := range []int{30, 50, 80} {
		for _, l := range statusLines(testStatus(), w) {
			if n := utf8.RuneCountInString(l); n >= w {
				t.Errorf("width %d: line of %d runes: %q", w, n, l)
			}
			if strings.ContainsAny(l, "\n\r") {
				t.Errorf("line with a line break: %q", l)
			}
		}
	}
}

func TestStatusLinesSLOAndOverflow(t *testing.T) {
	st := testStatus()
	st.Pipelines[0].SLOBreached = true
	st.Pipelines[0].Ready = false
	var comps []engine.ComponentStatus
	for i := range 5 {
		comps = append(comps, engine.ComponentStatus{ID: fmt.Sprintf("sink.s%d", i), Kind: engine.KindSink, State: engine.StateFailing})
	}
	st.Pipelines[1].Components = comps
	lines := statusLines(st, 200)
	if !strings.Contains(lines[0], "✗ p99 above SLO 2.0s") {
		t.Errorf("SLO breach not shown: %q", lines[0])
	}
	if len(lines) != 1+1+maxFailingShown+1 || !strings.Contains(lines[len(lines)-1], "… and 2 more") {
		t.Errorf("want %d failing lines and a count of the rest, got:\n%s", maxFailingShown, strings.Join(lines, "\n"))
	}
}

// TestStatusWriterKeepsLinesBelowLogs checks the terminal sequences: a log
// record erases the status lines, is written, and the lines are redrawn.
func TestStatusWriterKeepsLinesBelowLogs(t *testing.T) {
	var b bytes.Buffer
	s := &statusWriter{w: &b}
	s.Write([]byte("before\n"))
	s.set([]string{"a 1", "b 1"})
	s.Write([]byte("log record\n"))
	s.set([]string{"a 2"})
	s.set([]string{"a 3", "b 3", "c 3"})
	s.clear()
	s.Write([]byte("after\n"))
	want := "before\n" +
		"a 1\nb 1" +
		"\r\033[1A\033[J" + "log record\n" + "a 1\nb 1" +
		"\r\033[1A\033[J" + "a 2" +
		"\r\033[J" + "a 3\nb 3\nc 3" +
		"\r\033[2A\033[J" +
		"after\n"
	if got := b.String(); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if screen := render(b.String()); screen != "before\nlog record\nafter\n" {
		t.Fatalf("screen after clear:\n%q", screen)
	}
}

// render plays the few terminal sequences statusWriter uses onto a screen
// (a carriage return is always followed by an erase or a full rewrite of the
// line there, so it simply empties the line).
func render(out string) string {
	screen := []string{""}
	row := 0
	for i := 0; i < len(out); i++ {
		switch {
		case out[i] == '\r':
			screen[row] = screen[row][:0]
		case out[i] == '\n':
			row++
			if row == len(screen) {
				screen = append(screen, "")
			}
		case strings.HasPrefix(out[i:], "\033[J"):
			screen = screen[:row+1]
			screen[row] = ""
			i += 2
		case out[i] == '\033':
			var n int
			fmt.Sscanf(out[i+2:], "%dA", &n)
			row -= n
			i = i + 2 + len(fmt.Sprint(n))
		default:
			screen[row] += string(out[i])
		}
	}
	return strings.Join(screen, "\n")
}

// runReplay runs flowd on a replay of n points at rate points/s with extra
// flags, and returns its stderr.
func runReplay(t *testing.T, n int, rate float64, flags ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	var in bytes.Buffer
	ts := time.Now().UTC()
	for i := range n {
		fmt.Fprintf(&in, `{"asset":"a","tag":"t%d","value":%d,"quality":"good","ts":%q}`+"\n", i%5, i, ts.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano))
	}
	src := filepath.Join(dir, "in.jsonl")
	os.WriteFile(src, in.Bytes(), 0o644)
	out := filepath.Join(dir, "out.jsonl")
	pipe := filepath.Join(dir, "p.hcl")
	os.WriteFile(pipe, []byte(fmt.Sprintf(`pipeline "replay" {
  source "file" "in" {
    path       = %q
    rate       = %g
    batch_size = 10
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
}
`, src, rate, out)), 0o644)
	var stdout, stderr bytes.Buffer
	args := append([]string{"run", "--http", "off"}, flags...)
	if code := cli(append(args, pipe), &stdout, &stderr); code != exitOK {
		t.Fatalf("flowd run exited %d:\n%s", code, stderr.String())
	}
	got, _ := os.ReadFile(out)
	if lines := bytes.Count(got, []byte("\n")); lines != n {
		t.Fatalf("delivered %d points, want %d", lines, n)
	}
	return stderr.String(), out
}

// TestRunWithoutTerminalLogsJSON: off a terminal flowd writes only structured
// records, among them periodic status records, and no terminal sequences.
