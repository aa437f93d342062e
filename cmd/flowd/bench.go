package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/flowd/flowd/engine"
)

// A bench scenario runs flowd on one pipeline file, with load generators in
// separate processes, and measures flowd's own process.
type scenario struct {
	name    string
	summary string
	anchor  string
	// pipeline is a file under pipelines/bench/.
	pipeline string
	// needs lists the service variables (from e2e/services.sh) it requires.
	needs []string
	// vars are --var values for the pipeline, from the service variables.
	vars func(env func(string) string) map[string]string
	// generators are load generator commands (argv after the flowd binary).
	generators func(env func(string) string) [][]string
}

func scenarios() []scenario {
	return []scenario{
		{
			name: "engine", summary: "sim → cov → discard: the engine alone, no external service",
			anchor: "-", pipeline: "engine.hcl",
		},
	}
}

// benchResult is the JSON object DESIGN.md fixes.
type benchResult struct {
	Scenario     string       `json:"scenario"`
	DurationS    float64      `json:"duration_s"`
	PointsInPerS float64      `json:"points_in_per_s"`
	PointsOutPS  float64      `json:"points_out_per_s"`
	LatencyP50   float64      `json:"latency_p50_ms"`
	LatencyP99   float64      `json:"latency_p99_ms"`
	LatencyMax   float64      `json:"latency_max_ms"`
	CPUCores     float64      `json:"cpu_cores"`
	RSSPeakMB    float64      `json:"rss_peak_mb"`
	PointsLost   int64        `json:"points_lost"`
	PointsIn     int64        `json:"points_in"`
	PointsOut    int64        `json:"points_out"`
	Anchor       string       `json:"anchor,omitempty"`
	Peer         *benchResult `json:"peer,omitempty"`
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	duration := fs.Duration("duration", 60*time.Second, "how long to measure")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	dir := fs.String("pipelines", "pipelines/bench", "directory of the scenario pipeline files")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd bench [--duration D] [--json] SCENARIO\n\nScenarios:")
		for _, s := range scenarios() {
			fmt.Fprintf(stderr, "  %-12s %s\n", s.name, s.summary)
		}
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	var sc *scenario
	for _, s := range scenarios() {
		if s.name == fs.Arg(0) {
			sc = &s
		}
	}
	if sc == nil {
		fmt.Fprintf(stderr, "flowd bench: unknown scenario %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	for _, v := range sc.needs {
		if os.Getenv(v) == "" {
			fmt.Fprintf(stderr, "flowd bench %s: %s is not set; start the services first: eval \"$(e2e/services.sh up)\"\n", sc.name, v)
			return exitUsage
		}
	}
	res, err := runScenario(context.Background(), *sc, filepath.Join(*dir, sc.pipeline), *duration, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "flowd bench %s: %v\n", sc.name, err)
		return exitInvalid
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printBench(stdout, res)
	}
	if res.PointsLost != 0 {
		return exitInvalid
	}
	return exitOK
}

func printBench(w io.Writer, r *benchResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\t", r.Scenario)
	if r.Peer != nil {
		fmt.Fprint(tw, "peer\t")
	}
	fmt.Fprintln(tw)
	row := func(name string, f func(*benchResult) string) {
		fmt.Fprintf(tw, "%s\t%s\t", name, f(r))
		if r.Peer != nil {
			fmt.Fprintf(tw, "%s\t", f(r.Peer))
		}
		fmt.Fprintln(tw)
	}
	row("duration", func(r *benchResult) string { return fmt.Sprintf("%.0f s", r.DurationS) })
	row("points in/s", func(r *benchResult) string { return fmt.Sprintf("%.0f", r.PointsInPerS) })
	row("points out/s", func(r *benchResult) string { return fmt.Sprintf("%.0f", r.PointsOutPS) })
	row("latency p50/p99/max", func(r *benchResult) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f ms", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	})
	row("cpu (cores)", func(r *benchResult) string { return fmt.Sprintf("%.3f", r.CPUCores) })
	row("rss peak", func(r *benchResult) string { return fmt.Sprintf("%.0f MB", r.RSSPeakMB) })
	row("points lost", func(r *benchResult) string { return strconv.FormatInt(r.PointsLost, 10) })
	if r.Anchor != "" && r.Anchor != "-" {
		fmt.Fprintf(tw, "anchor\t%s\t\n", r.Anchor)
	}
	tw.Flush()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func runScenario(ctx context.Context, sc scenario, pipeline string, duration time.Duration, logw io.Writer) (*benchResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := os.Getenv
	var gens []*exec.Cmd
	defer func() {
		for _, g := range gens {
			g.Process.Signal(syscall.SIGTERM)
			g.Wait()
		}
	}()
	if sc.generators != nil {
		for _, argv := range sc.generators(env) {
			g := exec.CommandContext(ctx, self, argv...)
			g.Stderr = logw
			if err := g.Start(); err != nil {
				return nil, fmt.Errorf("generator %v: %w", argv, err)
			}
			gens = append(gens, g)
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "flowd-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dataDir)
	finalPath := filepath.Join(dataDir, "final-status.json")
	argv := []string{"run", "--http", addr, "--data-dir", dataDir, "--log-format", "json", "--log-level", "warn", "--final-status", finalPath}
	if sc.vars != nil {
		for k, v := range sc.vars(env) {
			argv = append(argv, "--var", k+"="+v)
		}
	}
	argv = append(argv, pipeline)
	cmd := exec.Command(self, argv...)
	cmd.Stderr = logw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()

	if err := waitHTTP(addr, 30*time.Second, exited); err != nil {
		return nil, err
	}
	// Warm up, then measure a steady window.
	warm := min(10*time.Second, duration/5)
	time.Sleep(warm)
	st0, err := fetchStatus(addr)
	if err != nil {
		return nil, err
	}
	cpu0, _ := procCPU(pid)
	t0 := time.Now()
	var last engine.Status
	for time.Since(t0) < duration {
		time.Sleep(min(time.Second, duration-time.Since(t0)))
		if s, err := fetchStatus(addr); err == nil {
			last = s
		}
	}
	cpu1, _ := procCPU(pid)
	elapsed := time.Since(t0).Seconds()
	rss, _ := procPeakRSS(pid)
	for _, g := range gens {
		g.Process.Signal(syscall.SIGTERM)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(2 * time.Minute):
		return nil, errors.New("flowd did not drain within 2 minutes")
	}
	in0, out0 := statusCounts(st0)
	in1, out1 := statusCounts(last)
	res := &benchResult{
		Scenario: sc.name, DurationS: elapsed, Anchor: sc.anchor,
		PointsInPerS: float64(in1-in0) / elapsed, PointsOutPS: float64(out1-out0) / elapsed,
		CPUCores: (cpu1 - cpu0) / elapsed, RSSPeakMB: float64(rss) / 1e6,
		PointsIn: in1, PointsOut: out1,
	}
	for _, p := range last.Pipelines {
		for _, c := range p.Components {
			if c.Latency != nil {
				res.LatencyP50 = max(res.LatencyP50, c.Latency.P50ms)
				res.LatencyP99 = max(res.LatencyP99, c.Latency.P99ms)
				res.LatencyMax = max(res.LatencyMax, c.Latency.Maxms)
			}
		}
	}
	final, err := readFinalStatus(finalPath)
	if err != nil {
		return res, fmt.Errorf("final status: %w", err)
	}
	res.PointsLost = lostPoints(final)
	if exitErr != nil {
		return res, fmt.Errorf("flowd exited with %v", exitErr)
	}
	return res, nil
}

func readFinalStatus(path string) (engine.Status, error) {
	var st engine.Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
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

func waitHTTP(addr string, timeout time.Duration, exited <-chan error) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("flowd exited at start: %v", err)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("flowd did not start")
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

// procCPU returns a process's user+system CPU time in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// procPeakRSS returns VmHWM in bytes.
func procPeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmHWM")
}
