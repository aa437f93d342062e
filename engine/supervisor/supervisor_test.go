package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/flowd/flowd/engine/diskq"
	"github.com/flowd/flowd/sinks/discard"
	filesink "github.com/flowd/flowd/sinks/file"
	"github.com/flowd/flowd/transforms/cov"
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
		h, err := Hash([]string{dir})
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
	if _, err := Hash([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Fatal("no error for a missing path")
	}
}

// simPipeline is a pipeline name reading sim assets named prefix… into the
// file out, through a disk buffer in bufDir ("": a memory buffer).
func simPipeline(name, prefix, out, bufDir string) string {
	buffer := ""
	if bufDir != "" {
		buffer = fmt.Sprintf("\n    buffer {\n      type = \"disk\"\n      dir  = %q\n    }", bufDir)
	}
	return fmt.Sprintf(`pipeline %q {
  source "sim" "s" {
    interval     = "5ms"
    asset_prefix = %q
  }
  sink "file" "out" {
    inputs = [source.s]
    path   = %q%s
  }
}
`, name, prefix, out, buffer)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testRegistry() *engine.Registry {
	return engine.NewRegistry(sim.Spec, cov.Spec, filesink.Spec, discard.Spec).WithCodecs(codecs.All())
}

// logBuffer is a log output tests read while the supervisor writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start loads paths and runs a supervisor on them until the test ends.
func start(t *testing.T, paths ...string) (*Supervisor, chan<- os.Signal, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	opts := Options{
		Paths: paths, DataDir: t.TempDir(), Registry: testRegistry(), Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Level: new(slog.LevelVar), Drain: 5 * time.Second, NewDiskBuffer: diskq.NewBuffer,
	}
	hash, _ := Hash(paths)
	metrics := prometheus.NewRegistry()
	cfg, diags := config.NewLoader(config.Options{Registry: opts.Registry, DataDir: opts.DataDir, Logger: opts.Logger, Metrics: metrics}).LoadFiles(paths)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	s, err := New(opts, cfg, metrics, hash)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, hup) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("supervisor did not stop")
		}
	})
	return s, hup, logs
}

// received is what the source of pipeline name has read so far (-1: no
// such pipeline).
func received(rt *engine.Runtime, name string) int64 {
	for _, p := range rt.Status().Pipelines {
		if p.Name == name {
			for _, c := range p.Components {
				if c.Kind == engine.KindSource {
					return c.Received
				}
			}
		}
	}
	return -1
}

func countAssets(path, prefix string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), `"asset":"`+prefix)
}

// A configuration that validates but cannot be started (a disk buffer that
// does not open) sends the supervisor back to the previous one.
func TestReloadRollsBackWhenTheNewRuntimeCannotStart(t *testing.T) {
	dir := t.TempDir()
	path, out := filepath.Join(dir, "p.hcl"), filepath.Join(dir, "out.jsonl")
	write(t, path, simPipeline("p", "a", out, ""))
	s, hup, logs := start(t, path)
	first := s.running
	waitFor(t, func() bool { return countAssets(out, "a") > 0 }, "the first configuration delivers nothing")

	// The buffer directory would be inside a regular file: it cannot open.
	write(t, path, simPipeline("p", "b", out, filepath.Join(out, "buffer")))
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("rejected")) == 1 }, "the failed start was not counted")
	if !strings.Contains(logs.String(), "cannot start the new configuration; going back to the previous one") {
		t.Fatalf("the new configuration did not fail at start:\n%s", logs)
	}
	before := countAssets(out, "a")
	waitFor(t, func() bool { return countAssets(out, "a") > before+10 }, "the previous configuration did not run again")
	if n := countAssets(out, "b"); n != 0 {
		t.Fatalf("%d points of the configuration that could not start", n)
	}
	if s.running != first {
		t.Fatal("the failed configuration became the running one")
	}
	if got := value(s.metrics.successful); got != 0 {
		t.Fatalf("last reload successful: %v, want 0", got)
	}
}

// Editing one of two pipeline files restarts only that pipeline: the other
// keeps its components and counters (they never go back), and nothing of
// either is lost.
func TestReloadKeepsUnchangedPipelines(t *testing.T) {
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
	outA, outB := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl")
	write(t, fileA, simPipeline("a", "a", outA, ""))
	write(t, fileB, simPipeline("b", "b1-", outB, filepath.Join(dir, "buf-b")))
	s, hup, _ := start(t, dir)
	rt := s.Runtime()
	waitFor(t, func() bool { return received(rt, "a") > 100 && received(rt, "b") > 100 }, "no traffic")

	write(t, fileB, simPipeline("b", "b2-", outB, filepath.Join(dir, "buf-b")))
	beforeA := received(rt, "a")
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 1 }, "no reload")
	if got := received(rt, "a"); got < beforeA {
		t.Fatalf("pipeline a restarted: its source read %d, %d before the reload", got, beforeA)
	}
	waitFor(t, func() bool { return countAssets(outB, "b2-") > 100 }, "the changed pipeline did not restart")
	if s.Runtime() != rt {
		t.Fatal("the runtime was replaced")
	}
	st := rt.Status()
	if len(st.Pipelines) != 2 || st.Pipelines[0].Name != "a" || st.Pipelines[1].Name != "b" {
		t.Fatalf("pipelines after the reload: %+v", st.Pipelines)
	}

	// /metrics serves each pipeline's component series once: a's from the
	// first load's registry, b's from the reload's (which also holds the
	// series of a's unused second build).
	w := httptest.NewRecorder()
	engine.NewHandler(s.Runtime, s.Metrics()).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	for _, name := range []string{"a", "b"} {
		series := `flowd_sim_skipped_ticks_total{component="source.s",pipeline="` + name + `"}`
		if n := strings.Count(w.Body.String(), series); n != 1 {
			t.Errorf("%s appears %d times", series, n)
		}
	}
}

// A changed pipeline's replacement takes over its state: a cov state file
// is saved when the old pipeline stops and read by the new one.
func TestReloadHandsCovStateToTheReplacement(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.hcl")
	conf := func(out string) string {
		return fmt.Sprintf(`pipeline "p" {
  source "sim" "s" {
    assets   = 2
    tags     = 2
    interval = "5ms"
  }
  transform "cov" "c" {
    inputs     = [source.s]
    deadband   = 1e12
    state_file = "cov.state"
  }
  sink "file" "out" {
    inputs = [transform.c]
    path   = %q
  }
}
`, out)
	}
	out1, out2 := filepath.Join(dir, "out1.jsonl"), filepath.Join(dir, "out2.jsonl")
	write(t, path, conf(out1))
	s, hup, _ := start(t, path)
	rt := s.Runtime()
	// Each tag passes once, the first time it is seen; later values stay
	// within the deadband.
	waitFor(t, func() bool { return countAssets(out1, "") == 4 && received(rt, "p") > 50 }, "cov passed no first values")
	write(t, path, conf(out2))
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 1 }, "no reload")
	waitFor(t, func() bool { return received(rt, "p") > 50 }, "the new pipeline reads nothing")
	if n := countAssets(out2, ""); n != 0 {
		t.Fatalf("the replacement passed %d first values again: the state was not handed over", n)
	}
	if n := countAssets(out1, ""); n != 4 {
		t.Fatalf("%d points in the first file, want 4", n)
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

// A pipeline removed from the files stops, one added starts, and a SIGHUP
// with unchanged files rebuilds every pipeline (to read again what flowd
// cannot watch, like a certificate named by path).
func TestReloadAddsRemovesAndRebuildsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.hcl"), filepath.Join(dir, "b.hcl")
	outA, outB, outC := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "c.jsonl")
	write(t, fileA, simPipeline("a", "a", outA, ""))
	write(t, fileB, simPipeline("b", "b", outB, ""))
	s, hup, logs := start(t, dir)
	rt := s.Runtime()
	waitFor(t, func() bool { return received(rt, "a") > 100 && received(rt, "b") > 100 }, "no traffic")

	write(t, fileB, simPipeline("c", "c", outC, ""))
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return received(rt, "c") > 0 }, "the added pipeline did not start")
	if received(rt, "b") != -1 {
		t.Fatal("the removed pipeline is still there")
	}
	if !strings.Contains(logs.String(), "kept=a restarted=c stopped=b") {
		t.Fatalf("reload log:\n%s", logs)
	}

	waitFor(t, func() bool { return received(rt, "a") > 200 }, "a stopped")
	before := received(rt, "a")
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 2 }, "no second reload")
	if got := received(rt, "a"); got >= before {
		t.Fatalf("a was not rebuilt by SIGHUP with unchanged files: read %d, %d before", got, before)
	}
	if !strings.Contains(logs.String(), `kept="" restarted=a,c stopped=a,c`) {
		t.Fatalf("reload log:\n%s", logs)
	}
}

// A changed pipeline's replacement takes over its disk buffer: the backlog
// the old pipeline could not deliver (its file cannot be opened) is kept on
// disk when it stops and delivered by the replacement.
func TestReloadHandsDiskBufferToTheReplacement(t *testing.T) {
	dir := t.TempDir()
	path, blocked, out := filepath.Join(dir, "p.hcl"), filepath.Join(dir, "blocked"), filepath.Join(dir, "out.jsonl")
	if err := os.Mkdir(blocked, 0o755); err != nil { // a directory: the file sink cannot open it
		t.Fatal(err)
	}
	conf := func(prefix, out string) string {
		return strings.Replace(simPipeline("p", prefix, out, ""), "path   =", "buffer {\n      type = \"disk\"\n    }\n    path   =", 1)
	}
	write(t, path, conf("g1-", blocked))
	s, hup, logs := start(t, path)
	rt := s.Runtime()
	waitFor(t, func() bool {
		for _, c := range rt.Status().Pipelines[0].Components {
			if c.Buffer != nil && c.Buffer.Points > 100 {
				return true
			}
		}
		return false
	}, "no backlog in the disk buffer")

	write(t, path, conf("g2-", out))
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 1 }, "no reload")
	var first int
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "previous configuration drained") {
			if _, err := fmt.Sscanf(l[strings.Index(l, "points_in="):], "points_in=%d", &first); err != nil {
				t.Fatal(err)
			}
		}
	}
	if first < 100 {
		t.Fatalf("the first pipeline read %d points", first)
	}
	waitFor(t, func() bool { return countAssets(out, "g1-") == first && countAssets(out, "g2-") > 0 }, "the backlog was not delivered by the replacement")
}

// A reload that hands a disk buffer directory from a removed pipeline to an
// added one, and a SIGHUP that rebuilds a pipeline on its own directory,
// never trip over the directory's lock: the stopping pipeline closes its
// buffer before the new one opens it, and the backlog moves with it.
func TestReloadReopensDiskBufferDirectories(t *testing.T) {
	dir := t.TempDir()
	path, blocked, out := filepath.Join(dir, "p.hcl"), filepath.Join(dir, "blocked"), filepath.Join(dir, "out.jsonl")
	bufDir := filepath.Join(dir, "buf")
	if err := os.Mkdir(blocked, 0o755); err != nil { // a directory: the file sink cannot open it
		t.Fatal(err)
	}
	write(t, path, simPipeline("a", "g1-", blocked, bufDir))
	s, hup, logs := start(t, path)
	rt := s.Runtime()
	waitFor(t, func() bool {
		for _, c := range rt.Status().Pipelines[0].Components {
			if c.Buffer != nil && c.Buffer.Points > 100 {
				return true
			}
		}
		return false
	}, "no backlog in the disk buffer")

	write(t, path, simPipeline("b", "g2-", out, bufDir))
	hup <- syscall.SIGHUP
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 1 }, "the reload did not succeed")
	waitFor(t, func() bool { return countAssets(out, "g1-") > 100 && countAssets(out, "g2-") > 0 }, "pipeline b did not deliver a's backlog")

	hup <- syscall.SIGHUP // unchanged files: b is rebuilt on its own directory
	waitFor(t, func() bool { return value(s.metrics.total.WithLabelValues("success")) == 2 }, "the rebuild did not succeed")
	before := countAssets(out, "g2-")
	waitFor(t, func() bool { return countAssets(out, "g2-") > before+10 }, "the rebuilt pipeline delivers nothing")
	if strings.Contains(logs.String(), "held by") || value(s.metrics.total.WithLabelValues("rejected")) != 0 {
		t.Fatalf("a reload failed on the buffer's own lock:\n%s", logs)
	}
}
