package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/engine"
)

// cloudTier is the second tier of a two-tier scenario: replicas of one
// pipeline in one Kafka consumer group, reading the topic the first tier
// (the scenario's own pipeline, the edge) writes to.
type cloudTier struct {
	pipeline   string
	replicas   int
	partitions int32
	vars       func(r *benchRun) map[string]string
	// keyspace, when set, is the Cassandra keyspace of the run, dropped
	// after it.
	keyspace func(r *benchRun) string
}

// cloudRun is the running cloud tier of one bench run.
type cloudRun struct {
	tier  *cloudTier
	r     *benchRun
	procs []*flowdProc
	st0   []engine.Status
	// profile, when set, is where the first replica's CPU profile of the
	// measured window goes.
	profile string
	prof    *profileRun
}

func startCloud(ctx context.Context, t *cloudTier, r *benchRun, self, dir, profile string, logw io.Writer) (*cloudRun, error) {
	c := &cloudRun{tier: t, r: r, profile: profile}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := createTopic(cctx, r.env("FLOWD_TEST_KAFKA"), r.topic, t.partitions)
	cancel()
	if err != nil {
		return c, fmt.Errorf("create topic %s: %w", r.topic, err)
	}
	for i := range t.replicas {
		p, err := startFlowd(self, filepath.Join(dir, t.pipeline), t.vars(r), i == 0 && profile != "", logw)
		if err != nil {
			return c, err
		}
		c.procs = append(c.procs, p)
	}
	for _, p := range c.procs {
		if err := p.waitHTTP(2 * time.Minute); err != nil {
			return c, fmt.Errorf("cloud replica: %w", err)
		}
		if err := waitSourcesUp(ctx, p.addr, time.Minute); err != nil {
			return c, fmt.Errorf("cloud replica: %w", err)
		}
	}
	return c, nil
}

// mark starts the measured window (and the profile, when asked for).
func (c *cloudRun) mark(d time.Duration) {
	if c.profile != "" {
		c.prof = startProfile(c.procs[0].pprof, d, c.profile)
	}
	c.st0 = make([]engine.Status, len(c.procs))
	for i, p := range c.procs {
		c.st0[i], _ = fetchStatus(p.addr)
		p.cpu0, _ = procCPU(p.cmd.Process.Pid)
	}
}

// measure ends the window: rates, CPU, peak RSS and latency of the tier.
func (c *cloudRun) measure(elapsed float64) *TierResult {
	t := &TierResult{Tier: "cloud", Processes: len(c.procs)}
	var cpu float64
	var din, dout int64
	for i, p := range c.procs {
		pid := p.cmd.Process.Pid
		c1, _ := procCPU(pid)
		cpu += c1 - p.cpu0
		if rss, err := procPeakRSS(pid); err == nil {
			t.RSSPeakMB = max(t.RSSPeakMB, float64(rss)/1e6)
		}
		st, err := fetchStatus(p.addr)
		if err != nil {
			continue
		}
		in0, out0 := statusCounts(c.st0[i])
		in1, out1 := statusCounts(st)
		din += in1 - in0
		dout += out1 - out0
		l := latencyOf(st)
		t.LatencyP50 = max(t.LatencyP50, l.P50ms)
		t.LatencyP99 = max(t.LatencyP99, l.P99ms)
		t.LatencyMax = max(t.LatencyMax, l.Maxms)
	}
	t.PointsInPerS, t.PointsOutPS, t.CPUCores = float64(din)/elapsed, float64(dout)/elapsed, cpu/elapsed
	if c.prof != nil {
		if err := c.prof.wait(); err != nil {
			fmt.Fprintf(os.Stderr, "flowd bench: cloud cpu profile: %v\n", err)
		}
	}
	if dout > 0 {
		t.CPUMicrosPerPoint = cpu / float64(dout) * 1e6
	}
	return t
}

// drain waits until the replicas took in want points and delivered what
// they took in (or their counts stop moving for 30 s), then stops them and
// adds up their final statuses. Stopping a replica with points still
// unacknowledged would hand them to the others: duplicates, not losses.
func (c *cloudRun) drain(ctx context.Context, want int64, t *TierResult) error {
	if len(c.procs) == 0 {
		return nil
	}
	deadline := time.Now().Add(5 * time.Minute)
	var last int64 = -1
	still := time.Now()
	for time.Now().Before(deadline) {
		var in, out int64
		for _, p := range c.procs {
			if st, err := fetchStatus(p.addr); err == nil {
				i, o := statusCounts(st)
				in, out = in+i, out+o
			}
		}
		if in >= want && out >= in {
			break
		}
		if in+out != last {
			last, still = in+out, time.Now()
		} else if time.Since(still) > 30*time.Second {
			break
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return ctx.Err()
		}
	}
	var errs error
	var cpu float64
	defer func() {
		if t.PointsOut > 0 {
			t.CPUMicrosPerPointRun = cpu / float64(t.PointsOut) * 1e6
		}
	}()
	for _, p := range c.procs {
		st, err := p.stop(2 * time.Minute)
		cpu += p.lifeCPU()
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("cloud replica: %w", err))
			continue
		}
		in, out := statusCounts(st)
		t.PointsIn += in
		t.PointsOut += out
		t.PointsLost += lostPoints(st)
	}
	return errs
}

// close kills what is left and removes the run's topic and keyspace.
func (c *cloudRun) close() {
	for _, p := range c.procs {
		p.kill()
	}
	deleteTopic(c.r.env("FLOWD_TEST_KAFKA"), c.r.topic)
	if c.tier.keyspace != nil {
		dropKeyspace(c.r.env("FLOWD_TEST_CASSANDRA"), c.tier.keyspace(c.r))
	}
}

// dropKeyspace removes a run's keyspace so benchmarks do not fill the node.
func dropKeyspace(host, ks string) {
	cl := gocql.NewCluster(host)
	cl.Logger = gocql.NewLogger(gocql.LogLevelNone)
	cl.Timeout = 30 * time.Second
	s, err := cl.CreateSession()
	if err != nil {
		return
	}
	defer s.Close()
	s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
}

func trackersKeyspace(r *benchRun) string { return "flowd_bench_" + r.id }

// finishCloud drains the cloud tier once the edge has stopped and the topic
// was counted, and makes res the two tiers' whole: the cloud must take in
// every point the topic holds and deliver or count every point it took in.
// res.Truth stays the edge's (published, received, delivered to the topic,
// read back from it); the cloud's counts are in its tier.
func finishCloud(ctx context.Context, res *Result, edge, cloud *TierResult, c *cloudRun, edgeCPU float64) {
	edge.PointsIn, edge.PointsOut = res.PointsIn, res.PointsOut
	if edge.PointsOut > 0 {
		edge.CPUMicrosPerPointRun = edgeCPU / float64(edge.PointsOut) * 1e6
	}
	edge.PointsLost = res.PointsLost
	want := res.Truth.InTopic
	if want == 0 {
		want = res.PointsOut
	}
	if err := c.drain(ctx, want, cloud); err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	if cloud.PointsLost > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d points neither delivered nor counted as dropped by the cloud sinks", cloud.PointsLost))
	}
	cloud.Duplicates = max(0, cloud.PointsIn-want)
	if miss := want - cloud.PointsIn; miss > 0 {
		cloud.PointsLost += miss
		res.Problems = append(res.Problems, fmt.Sprintf("the topic holds %d points, the cloud replicas took in %d", want, cloud.PointsIn))
	}
	res.Tiers = []*TierResult{edge, cloud}
	res.PointsLost = edge.PointsLost + cloud.PointsLost
	res.PointsOut, res.PointsOutPS = cloud.PointsOut, cloud.PointsOutPS
	res.CPUCores = edge.CPUCores + cloud.CPUCores
	res.RSSPeakMB = edge.RSSPeakMB + cloud.RSSPeakMB*float64(cloud.Processes)
	res.LatencyP50, res.LatencyP99, res.LatencyMax = cloud.LatencyP50, cloud.LatencyP99, cloud.LatencyMax
	if res.CPUCores > 0 {
		res.PointsPerCPUSecond = cloud.PointsOutPS / res.CPUCores
	}
}
