// Package harness runs the real flowd binary in end-to-end tests: build it
// once, start it on a free port, read its status and metrics, stop it with a
// signal or kill it, and require the services e2e/services.sh starts.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Flowd builds the flowd binary once per test process and returns its path.
// FLOWD_BIN overrides it with a prebuilt binary.
func Flowd(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("FLOWD_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowd-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "flowd")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/flowd")
		cmd.Dir = RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Require returns an environment variable set by e2e/services.sh. Without
// it the test is skipped, saying how to get it, except under make test and
// in CI (FLOWD_TEST_STRICT=1 or CI=true), where a missing server fails the
// test instead of letting it pass unrun.
func Require(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := fmt.Sprintf("%s is not set: run `eval \"$(e2e/services.sh up)\"` first (make test does)", name)
		if os.Getenv("FLOWD_TEST_STRICT") == "1" || os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Eventually polls cond until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s: "+format, append([]any{timeout}, args...)...)
}

// syncBuffer is a goroutine-safe output buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Proc is a running flowd.
type Proc struct {
	t      testing.TB
	Cmd    *exec.Cmd
	Addr   string // host:port of the HTTP endpoint
	Stdout *syncBuffer
	Stderr *syncBuffer
	done   chan struct{}
	err    error
}

// Start runs `flowd run --http 127.0.0.1:PORT args...` and waits until it
// answers /healthz. The process is killed when the test ends if still running.
func Start(t testing.TB, args ...string) *Proc {
	t.Helper()
	return StartEnv(t, nil, args...)
}

// StartEnv is Start with extra environment variables (NAME=value).
func StartEnv(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	p := LaunchEnv(t, env, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("flowd exited at start: %v\n%s", p.err, p.Stderr.String())
		default:
		}
		if resp, err := http.Get("http://" + p.Addr + "/healthz"); err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowd did not answer /healthz within 30s\n%s", p.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Launch runs `flowd run --http 127.0.0.1:PORT args...` without waiting for
// it to answer: for runs that may end by themselves at once.
func Launch(t testing.TB, args ...string) *Proc {
	t.Helper()
	return LaunchEnv(t, nil, args...)
}

// LaunchEnv is Launch with extra environment variables (NAME=value).
func LaunchEnv(t testing.TB, env []string, args ...string) *Proc {
	t.Helper()
	port := FreePort(t)
	p := &Proc{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port), Stdout: &syncBuffer{}, Stderr: &syncBuffer{}, done: make(chan struct{})}
	full := append([]string{"run", "--http", p.Addr, "--log-format", "json"}, args...)
	p.Cmd = exec.Command(Flowd(t), full...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("flowd stderr (last 4 KiB):\n%s", tail(p.Stderr.String(), 4096))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Signal sends a signal to flowd.
func (p *Proc) Signal(sig syscall.Signal) { p.Cmd.Process.Signal(sig) }

// Kill ends flowd at once (SIGKILL) and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Kill()
	<-p.done
}

// Wait waits for flowd to exit and returns its exit code (-1 on timeout).
func (p *Proc) Wait(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}

// Stop sends SIGTERM and waits for the exit code.
func (p *Proc) Stop(timeout time.Duration) int {
	p.Signal(syscall.SIGTERM)
	return p.Wait(timeout)
}

// Exited reports whether flowd has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Status reads /api/status.
func (p *Proc) Status() (engine.Status, error) {
	var st engine.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr+"/api/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Readyz reads /readyz: its status code and body (the problems, one a line).
func (p *Proc) Readyz() (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metrics scrapes /metrics.
func (p *Proc) Metrics() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + p.Addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// Sum adds the values of a counter or gauge family whose labels include all of
// match ("name=value" pairs).
func Sum(families map[string]*dto.MetricFamily, name string, match ...string) float64 {
	f := families[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.Metric {
		if !labelsMatch(m, match) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func labelsMatch(m *dto.Metric, match []string) bool {
	for _, kv := range match {
		k, v, _ := strings.Cut(kv, "=")
		found := false
		for _, l := range m.Label {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Services runs e2e/services.sh with args (e.g. "down", "kafka"), for tests
// that stop and start a server mid-run; it fails the test if the script does.
func Services(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(RepoRoot(), "e2e", "services.sh"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("services.sh %v: %v\n%s", args, err, out)
	}
}

// ReadJSONL decodes a JSON-lines file as flowd writes it: a missing file has
// no lines, and a last line still being written is left out; any other line
// that does not decode fails the test.
func ReadJSONL[T any](t testing.TB, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(b, []byte("\n"))
	var out []T
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			if i == len(lines)-1 {
				break // not yet terminated by a newline
			}
			t.Fatalf("%s:%d: %v: %q", path, i+1, err, line)
		}
		out = append(out, v)
	}
	return out
}
