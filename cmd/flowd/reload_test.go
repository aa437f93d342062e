package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestConfigHash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		h, err := configHash([]string{dir})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	write("a.hcl", "pipeline \"a\" {}\n")
	h1 := hash()
	if hash() != h1 {
		t.Fatal("hash of unchanged files changed")
	}
	write("notes.txt", "not configuration")
	if hash() != h1 {
		t.Fatal("a non-.hcl file changed the hash")
	}
	write("a.hcl", "pipeline \"b\" {}\n")
	h2 := hash()
	if h2 == h1 {
		t.Fatal("changed contents, same hash")
	}
	write("b.hcl", "")
	if hash() == h2 {
		t.Fatal("an added file did not change the hash")
	}
	// Content moving between files is a change too.
	write("a.hcl", "")
	write("b.hcl", "pipeline \"b\" {}\n")
	if hash() == h2 {
		t.Fatal("contents moved from a.hcl to b.hcl, same hash")
	}
	if _, err := configHash([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("no error for a missing path")
	}
}

func simPipeline(prefix string) string {
	return `pipeline "p" {
  source "sim" "s" {
    interval     = "5ms"
    asset_prefix = "` + prefix + `"
  }
  sink "discard" "d" {
    inputs = [source.s]
  }
}
`
}

func newTestSupervisor(t *testing.T, path string) (*supervisor, *engine.Runtime) {
	t.Helper()
	s := &supervisor{
		paths: []string{path}, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), level: new(slog.LevelVar),
		drain: 5 * time.Second, metrics: newReloadMetrics(),
	}
	s.hash, _ = configHash(s.paths)
	s.running = s.prepare("start", s.hash)
	if s.running == nil {
		t.Fatal("the first configuration was rejected")
	}
	rt, err := s.build(s.running)
	if err != nil {
		t.Fatal(err)
	}
	return s, rt
}

func assetsOf(rt *engine.Runtime) string {
	if rt == nil {
		return ""
	}
	for _, p := range rt.Status().Pipelines {
		for _, c := range p.Components {
			if c.Kind == engine.KindSource && c.Received > 0 {
				return "running"
			}
		}
	}
	return ""
}

// A configuration that validates but cannot be started (a disk buffer that
// does not open) sends the supervisor back to the previous one.
func TestReloadRollsBackWhenTheNewRuntimeCannotStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.hcl")
	if err := os.WriteFile(path, []byte(simPipeline("a")), 0o644); err != nil {
		t.Fatal(err)
	}
	s, rt := newTestSupervisor(t, path)
	first := s.running
	var builds []*loaded
	s.newRuntime = func(l *loaded, opts engine.Options) (*engine.Runtime, error) {
		builds = append(builds, l)
		if l != first {
			return nil, errors.New("disk buffer: cannot open")
		}
		return engine.New(l.cfg.Pipelines, opts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, rt, hup) }()
	waitFor(t, func() bool { return assetsOf(s.cur.Load()) != "" }, "the first runtime delivers nothing")

	if err := os.WriteFile(path, []byte(simPipeline("b")), 0o644); err != nil {
		t.Fatal(err)
	}
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return s.cur.Load() != rt && assetsOf(s.cur.Load()) != "" }, "no runtime after the failed start")
	if len(builds) != 2 || builds[0] == first || builds[1] != first {
		t.Fatalf("builds: want the new configuration, then the previous one again; got %d builds", len(builds))
	}
	if s.running != first {
		t.Fatal("the failed configuration became the running one")
	}
	if got := value(s.metrics.total.WithLabelValues("rejected")); got != 1 {
		t.Fatalf("rejected reloads: %v, want 1", got)
	}
	if got := value(s.metrics.successful); got != 0 {
		t.Fatalf("last reload successful: %v, want 0", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor did not stop")
	}
}

func waitFor(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal(msg)
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
