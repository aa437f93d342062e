package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/flowd/flowd/engine"
)

// runBench runs one scenario: flowd, then the peer when it has one.
func runBench(ctx context.Context, sc scenario, pipeline, dir string, duration time.Duration, cpuprofile string, logw io.Writer) (*Result, error) {
	res, err := runScenario(ctx, sc, pipeline, dir, duration, cpuprofile, logw)
	if err != nil || sc.peer == nil {
		return res, err
	}
	peer, err := runPeer(ctx, sc, duration, logw)
	if peer != nil {
		res.Peer = peer
		if peer.PointsPerCPUSecond > 0 {
			res.PeerCPURatio = res.PointsPerCPUSecond / peer.PointsPerCPUSecond
		}
		if res.RSSPeakMB > 0 {
			res.PeerRSSRatio = peer.RSSPeakMB / res.RSSPeakMB
		}
	}
	if err != nil {
		return res, fmt.Errorf("peer: %w", err)
	}
	return res, nil
}

func newBenchRun(sc scenario) (*benchRun, error) {
	r := &benchRun{env: os.Getenv, id: strconv.FormatInt(time.Now().UnixNano()%1e10, 36)}
	if sc.plcPorts > 0 {
		ports, err := consecutivePorts(sc.plcPorts)
		if err != nil {
			return nil, err
		}
		r.ports = ports
	}
	r.topic = "flowd-bench-" + sc.name + "-" + r.id
	return r, nil
}

// startServers starts the simulators and waits until they listen.
func startServers(ctx context.Context, sc scenario, r *benchRun, self string, logw io.Writer) ([]*child, error) {
	var out []*child
	if sc.servers == nil {
		return nil, nil
	}
	for _, argv := range sc.servers(r) {
		c, err := startChild(self, argv, logw)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, waitPorts(ctx, r.ports, 2*time.Minute)
}

// runScenario runs the scenario's own pipeline (the edge of a two-tier
// scenario) with its simulators, publishers and cloud tier, measures a steady
// window and checks what came out against the ground truth.
func runScenario(ctx context.Context, sc scenario, pipeline, dir string, duration time.Duration, cpuprofile string, logw io.Writer) (*Result, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, err := newBenchRun(sc)
	if err != nil {
		return nil, err
	}
	e := &edgeRun{sc: sc, r: r, self: self, logw: logw, profile: cpuprofile}
	defer e.close()
	if err := e.start(ctx, pipeline, dir); err != nil {
		return nil, err
	}
	res, err := e.measure(ctx, duration)
	if err != nil {
		return nil, err
	}
	return e.finish(ctx, res)
}

// edgeRun is one run of a scenario's pipeline and what it started.
type edgeRun struct {
	sc   scenario
	r    *benchRun
	self string
	logw io.Writer
	// profile, when set, is where the CPU profile of the measured window
	// goes (and the first cloud replica's to profile.cloud).
	profile string
	cloud   *cloudRun
	servers []*child
	flowd   *flowdProc
	pubs    []*child
	// edgeTier and cloudTier are the tiers' shares of a two-tier run.
	edgeTier, cloudTier *TierResult
}

// start starts the cloud tier, the simulators, flowd and, once flowd's
// sources are up, the publishers.
func (e *edgeRun) start(ctx context.Context, pipeline, dir string) error {
	var err error
	if e.sc.cloud != nil {
		profile := ""
		if e.profile != "" {
			profile = e.profile + ".cloud"
		}
		e.cloud, err = startCloud(ctx, e.sc.cloud, e.r, e.self, dir, profile, e.logw)
		if err != nil {
			return err
		}
	}
	if e.servers, err = startServers(ctx, e.sc, e.r, e.self, e.logw); err != nil {
		return err
	}
	var vars map[string]string
	if e.sc.vars != nil {
		vars = e.sc.vars(e.r)
	}
	if e.flowd, err = startFlowd(e.self, pipeline, vars, e.profile != "", e.logw); err != nil {
		return err
	}
	if err := e.flowd.waitHTTP(2 * time.Minute); err != nil {
		return err
	}
	return e.startPublishers(ctx)
}

// startPublishers starts the load generators once flowd subscribed, so the
// broker keeps nothing from before and every published value is flowd's to
// deliver.
func (e *edgeRun) startPublishers(ctx context.Context) error {
	if e.sc.publishers == nil {
		return nil
	}
	if err := waitSourcesUp(ctx, e.flowd.addr, time.Minute); err != nil {
		return err
	}
	for _, a := range e.sc.publishers(e.r) {
		p, err := startChild(e.self, a, e.logw)
		if err != nil {
			return err
		}
		e.pubs = append(e.pubs, p)
	}
	// Publishers of many series take a while to set up; measure only once
	// points flow.
	waitReceived(ctx, e.flowd.addr, 1, 3*time.Minute)
	return nil
}

// measure warms up, then measures a steady window of duration: flowd's
// rates and latency from its status, CPU and peak RSS from /proc, and the
// cloud tier's alike.
func (e *edgeRun) measure(ctx context.Context, duration time.Duration) (*Result, error) {
	warm := min(10*time.Second, duration/5)
	if !sleepCtx(ctx, warm) {
		return nil, ctx.Err()
	}
	st0, err := fetchStatus(e.flowd.addr)
	if err != nil {
		return nil, err
	}
	var prof *profileRun
	if e.profile != "" {
		prof = startProfile(e.flowd.pprof, duration, e.profile)
	}
	pid := e.flowd.cmd.Process.Pid
	cpu0, _ := procCPU(pid)
	if e.cloud != nil {
		e.cloud.mark(duration)
	}
	t0 := time.Now()
	var last engine.Status
	for time.Since(t0) < duration {
		if !sleepCtx(ctx, min(time.Second, duration-time.Since(t0))) {
			break
		}
		if s, err := fetchStatus(e.flowd.addr); err == nil {
			last = s
		}
	}
	cpu1, _ := procCPU(pid)
	elapsed := time.Since(t0).Seconds()
	rss, _ := procPeakRSS(pid)
	if e.cloud != nil {
		e.cloudTier = e.cloud.measure(elapsed)
	}
	if prof != nil {
		if err := prof.wait(); err != nil {
			fmt.Fprintf(e.logw, "flowd bench: cpu profile: %v\n", err)
		}
	}
	return e.window(st0, last, elapsed, cpu1-cpu0, rss), nil
}

// window makes the result of the measured window from the statuses at its
// start and end, the CPU seconds flowd used in it and its peak RSS.
func (e *edgeRun) window(st0, st1 engine.Status, elapsed, cpu float64, rss int64) *Result {
	in0, out0 := statusCounts(st0)
	in1, out1 := statusCounts(st1)
	l := latencyOf(st1)
	res := &Result{
		Scenario: e.sc.name, DurationS: elapsed, Anchor: e.sc.anchor,
		PointsInPerS: float64(in1-in0) / elapsed, PointsOutPS: float64(out1-out0) / elapsed,
		CPUCores: cpu / elapsed, RSSPeakMB: float64(rss) / 1e6,
		LatencyP50: l.P50ms, LatencyP99: l.P99ms, LatencyMax: l.Maxms,
		Truth: &Truth{},
	}
	if cpu > 0 {
		res.PointsPerCPUSecond = float64(out1-out0) / cpu
	}
	if e.cloud != nil {
		// The edge's own share; finishCloud makes res the whole.
		e.edgeTier = &TierResult{Tier: "edge", Processes: 1, PointsInPerS: res.PointsInPerS, PointsOutPS: res.PointsOutPS,
			CPUCores: res.CPUCores, RSSPeakMB: res.RSSPeakMB, LatencyP50: l.P50ms, LatencyP99: l.P99ms, LatencyMax: l.Maxms}
		if out1 > out0 {
			e.edgeTier.CPUMicrosPerPoint = cpu / float64(out1-out0) * 1e6
		}
	}
	return res
}

// finish stops the load, lets flowd take in what the broker still holds
// for it, drains flowd and checks its final counts against the ground
// truth: the publishers' counts, the Kafka topic, the cloud tier.
func (e *edgeRun) finish(ctx context.Context, res *Result) (*Result, error) {
	published := e.stopPublishers(ctx, res)
	exitErr, timedOut := e.flowd.terminate(2 * time.Minute)
	if timedOut {
		return res, errors.New("flowd did not exit within 2 minutes of SIGTERM (goroutine dump in the log above)")
	}
	final, err := readFinalStatus(e.flowd.final)
	if err != nil {
		return res, fmt.Errorf("final status: %w", err)
	}
	in, out := statusCounts(final)
	res.PointsIn, res.PointsOut = in, out
	res.Truth.Received, res.Truth.Delivered = in, out
	res.PointsLost = lostPoints(final)
	if res.PointsLost > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d points neither delivered nor counted as dropped by the sinks", res.PointsLost))
	}
	if e.sc.publishers != nil {
		res.Truth.Published = published
		if miss := published - in; miss > 0 {
			res.PointsLost += miss
			res.Problems = append(res.Problems, fmt.Sprintf("publishers sent %d values, flowd received %d", published, in))
		}
	}
	if e.sc.kafkaTopic {
		e.checkTopic(ctx, res, out)
	}
	if e.cloud != nil {
		finishCloud(ctx, res, e.edgeTier, e.cloudTier, e.cloud, e.flowd.lifeCPU())
	}
	if e.sc.dropTopic {
		deleteTopic(e.r.env("FLOWD_TEST_KAFKA"), e.r.topic)
	}
	if exitErr != nil {
		return res, fmt.Errorf("flowd exited with %v", exitErr)
	}
	if in == 0 {
		return res, errors.New("no point reached flowd's sources (see the log above)")
	}
	return res, nil
}

// stopPublishers stops the load generators and waits until flowd took in
// what they published (or its count stops moving); it returns that count.
func (e *edgeRun) stopPublishers(ctx context.Context, res *Result) int64 {
	var published int64
	for _, p := range e.pubs {
		p.stop(30 * time.Second)
		n, ok := p.published()
		if !ok {
			res.Problems = append(res.Problems, "a publisher printed no count")
		}
		published += n
	}
	e.pubs = nil
	if e.sc.publishers != nil {
		waitReceived(ctx, e.flowd.addr, published, 3*time.Minute)
	}
	return published
}

// checkTopic reads the run's topic back: it must hold the out points flowd
// delivered. Without a cloud tier to read it, the topic is deleted then.
func (e *edgeRun) checkTopic(ctx context.Context, res *Result, out int64) {
	brokers := e.r.env("FLOWD_TEST_KAFKA")
	res.Truth.Topic = e.r.topic
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	_, points, err := countTopic(cctx, brokers, e.r.topic, countCanonical)
	cancel()
	if err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("reading back %s: %v", e.r.topic, err))
		res.PointsLost = max(res.PointsLost, 1)
	} else {
		res.Truth.InTopic = points
		if miss := out - points; miss > 0 {
			res.PointsLost += miss
			res.Problems = append(res.Problems, fmt.Sprintf("flowd delivered %d points, the topic holds %d", out, points))
		}
	}
	if e.cloud == nil {
		deleteTopic(brokers, e.r.topic)
	}
}

// close stops what the run started that is still running, in the reverse
// order of its start, and removes flowd's data directory.
func (e *edgeRun) close() {
	for _, p := range e.pubs {
		p.stop(30 * time.Second)
	}
	if e.flowd != nil {
		e.flowd.kill()
	}
	for _, s := range e.servers {
		s.stop(10 * time.Second)
	}
	if e.cloud != nil {
		e.cloud.close()
	}
}
