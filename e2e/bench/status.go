package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
)

// flowdProc is a flowd run process of a bench with its status address.
type flowdProc struct {
	cmd   *exec.Cmd
	addr  string
	final string
	dir   string
	// exited is closed once the process has exited, with exitErr its
	// Wait's error.
	exited  chan struct{}
	exitErr error
	pprof   string
	cpu0    float64
}

// startFlowd starts `flowd run` on pipeline with its own status address,
// data directory and final status file, and pprof when asked.
func startFlowd(self, pipeline string, vars map[string]string, pprof bool, logw io.Writer) (*flowdProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var extra []string
	if pprof {
		pa, err := freeAddr()
		if err != nil {
			return nil, err
		}
		extra = []string{"--pprof", pa}
	}
	dir, err := os.MkdirTemp("", "flowd-bench")
	if err != nil {
		return nil, err
	}
	p := &flowdProc{addr: addr, dir: dir, final: filepath.Join(dir, "final-status.json"), exited: make(chan struct{})}
	argv := append([]string{"run", "--http", addr, "--data-dir", dir, "--log-format", "json", "--log-level", "warn", "--final-status", p.final}, extra...)
	if pprof {
		p.pprof = extra[1]
	}
	for k, v := range vars {
		argv = append(argv, "--var", k+"="+v)
	}
	p.cmd = exec.Command(self, append(argv, pipeline)...)
	p.cmd.Stderr = logw
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *flowdProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM (flowd drains) and waits up to timeout for the
// exit; then it asks for a goroutine dump (SIGQUIT) and reports timedOut.
// exitErr is the exit's error.
func (p *flowdProc) terminate(timeout time.Duration) (exitErr error, timedOut bool) {
	if p.hasExited() {
		return p.exitErr, false
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr, false
	case <-time.After(timeout):
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		return nil, true
	}
}

// stop ends the process with SIGTERM (it drains) and reads its final status.
func (p *flowdProc) stop(timeout time.Duration) (engine.Status, error) {
	err, timedOut := p.terminate(timeout)
	if timedOut {
		return engine.Status{}, fmt.Errorf("flowd did not exit within %s of SIGTERM (goroutine dump in the log above)", timeout)
	}
	if err != nil {
		return engine.Status{}, fmt.Errorf("flowd exited with %v", err)
	}
	return readFinalStatus(p.final)
}

// kill ends the process if it still runs and removes its data directory.
func (p *flowdProc) kill() {
	if !p.hasExited() {
		p.cmd.Process.Kill()
		<-p.exited
	}
	os.RemoveAll(p.dir)
}

// lifeCPU is the process's user+system CPU time in seconds over its whole
// life, once it exited (0 before).
func (p *flowdProc) lifeCPU() float64 {
	if !p.hasExited() {
		return 0
	}
	return (p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()).Seconds()
}

// waitHTTP waits until the process answers on its status address.
func (p *flowdProc) waitHTTP(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.hasExited() {
			return fmt.Errorf("flowd exited at start: %v", p.exitErr)
		}
		if resp, err := http.Get("http://" + p.addr + "/healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("flowd did not start")
}

// waitSourcesUp waits until every source reports itself running, so
// subscriptions exist before anything is published.
func waitSourcesUp(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := fetchStatus(addr)
		if err == nil {
			up := true
			for _, p := range st.Pipelines {
				for _, c := range p.Components {
					if c.Kind == engine.KindSource && c.State != engine.StateConnected {
						up = false
					}
				}
			}
			if up {
				return nil
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	return errors.New("flowd's sources did not come up")
}

// waitReceived waits until flowd's sources have taken in n points (or,
// once some came, the count stops moving for 30 s).
func waitReceived(ctx context.Context, addr string, n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	still := time.Now()
	for time.Now().Before(deadline) {
		st, err := fetchStatus(addr)
		if err == nil {
			in, _ := statusCounts(st)
			if in >= n {
				return
			}
			if in != last {
				last, still = in, time.Now()
			} else if in > 0 && time.Since(still) > 30*time.Second {
				return
			}
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func fetchStatus(addr string) (engine.Status, error) {
	var st engine.Status
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func readFinalStatus(path string) (engine.Status, error) {
	var st engine.Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// statusCounts returns points produced by sources and delivered by sinks.
func statusCounts(st engine.Status) (in, out int64) {
	for _, p := range st.Pipelines {
		for _, c := range p.Components {
			switch c.Kind {
			case engine.KindSource:
				in += c.Received
			case engine.KindSink:
				out += c.Delivered
			}
		}
	}
	return in, out
}

// lostPoints counts, for every sink after the drain, the points its inputs
// emitted that it neither delivered, nor dropped with a counted reason, nor
// still holds in its buffer (a disk buffer keeps them for the next run).
func lostPoints(st engine.Status) int64 {
	var lost int64
	for _, p := range st.Pipelines {
		emitted := map[string]int64{}
		for _, c := range p.Components {
			emitted[c.ID] = c.Emitted
		}
		for _, c := range p.Components {
			if c.Kind != engine.KindSink {
				continue
			}
			var in int64
			for _, up := range c.Inputs {
				in += emitted[up]
			}
			var dropped int64
			for _, n := range c.Dropped {
				dropped += n
			}
			var held int64
			if c.Buffer != nil {
				held = c.Buffer.Points
			}
			lost += max(0, in-c.Delivered-dropped-held)
		}
	}
	return lost
}

// latencyOf is the largest latency figures of a status's components.
func latencyOf(st engine.Status) engine.LatencyStatus {
	var l engine.LatencyStatus
	for _, p := range st.Pipelines {
		for _, c := range p.Components {
			if c.Latency != nil {
				l.P50ms = max(l.P50ms, c.Latency.P50ms)
				l.P99ms = max(l.P99ms, c.Latency.P99ms)
				l.Maxms = max(l.Maxms, c.Latency.Maxms)
			}
		}
	}
	return l
}

var blockRe = regexp.MustCompile(`(?m)^\s*(source|transform|sink)\s+"([^"]+)"`)

// MissingComponents names the component types a pipeline file uses that
// reg (the flowd binary's components) does not have, so a scenario says what
// it needs instead of failing inside flowd.
func MissingComponents(path string, reg *engine.Registry) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kinds := map[string]engine.ComponentKind{"source": engine.KindSource, "transform": engine.KindTransform, "sink": engine.KindSink}
	var missing []string
	for _, m := range blockRe.FindAllStringSubmatch(string(b), -1) {
		if _, ok := reg.Lookup(kinds[m[1]], m[2]); !ok {
			if n := m[1] + " " + m[2]; !slices.Contains(missing, n) {
				missing = append(missing, n)
			}
		}
	}
	return missing, nil
}
