package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestRunWithoutTerminalLogsJSON(t *testing.T) {
	stderr, _ := runReplay(t, 60, 40, "--status-interval", "300ms")
	if strings.Contains(stderr, "\033") || strings.Contains(stderr, "\r") {
		t.Fatalf("terminal sequences in non-terminal output:\n%q", stderr)
	}
	statuses := 0
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", sc.Text())
		}
		if rec["msg"] == "status" {
			statuses++
			if rec["pipeline"] != "replay" {
				t.Errorf("status record without its pipeline: %v", rec)
			}
			for _, k := range []string{"in_per_s", "out_per_s", "p99_ms", "backlog", "ready"} {
				if _, ok := rec[k]; !ok {
					t.Errorf("status record without %s: %v", k, rec)
				}
			}
		}
	}
	if statuses == 0 {
		t.Fatalf("no status record in 1.5s of running with --status-interval 300ms:\n%s", stderr)
	}
	if !strings.Contains(stderr, `"msg":"flowd stopped"`) || !strings.Contains(stderr, `"points_delivered":60`) {
		t.Fatalf("no final summary:\n%s", stderr)
	}
}

func TestRunQuietLogsNoStatus(t *testing.T) {
	stderr, _ := runReplay(t, 30, 40, "--status-interval", "200ms", "--quiet")
	if strings.Contains(stderr, `"msg":"status"`) {
		t.Fatalf("status records despite --quiet:\n%s", stderr)
	}
	if !strings.Contains(stderr, `"msg":"flowd stopped"`) {
		t.Fatalf("--quiet must keep the logs:\n%s", stderr)
	}
}

// BenchmarkStatusLines is the once-a-second cost of the terminal lines.
func BenchmarkStatusLines(b *testing.B) {
	st := testStatus()
	b.ReportAllocs()
	for b.Loop() {
		statusLines(st, 120)
	}
}

func TestPprofLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := servePprof(ctx, "0.0.0.0:0"); err == nil {
		t.Fatal("a non-loopback --pprof address was accepted")
	}
	addr, err := servePprof(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cmdline: %s", resp.Status)
	}
}
