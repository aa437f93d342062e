package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Result is one scenario's outcome: the JSON object `flowd bench --json`
// prints (and e2e/bench_test.go reads) per scenario.
type Result struct {
	Scenario     string  `json:"scenario"`
	DurationS    float64 `json:"duration_s"`
	PointsInPerS float64 `json:"points_in_per_s"`
	PointsOutPS  float64 `json:"points_out_per_s"`
	LatencyP50   float64 `json:"latency_p50_ms"`
	LatencyP99   float64 `json:"latency_p99_ms"`
	LatencyMax   float64 `json:"latency_max_ms"`
	CPUCores     float64 `json:"cpu_cores"`
	RSSPeakMB    float64 `json:"rss_peak_mb"`
	PointsLost   int64   `json:"points_lost"`
	PointsIn     int64   `json:"points_in"`
	PointsOut    int64   `json:"points_out"`
	// PointsPerCPUSecond is points out per second of the process's CPU time.
	PointsPerCPUSecond float64 `json:"points_per_cpu_s"`
	// Truth is what was checked outside the process's own counters.
	Truth  *Truth  `json:"truth,omitempty"`
	Anchor string  `json:"anchor,omitempty"`
	Peer   *Result `json:"peer,omitempty"`
	// PeerCPURatio is flowd's points per CPU-second over the peer's;
	// PeerRSSRatio is the peer's peak RSS over flowd's.
	PeerCPURatio float64 `json:"peer_points_per_cpu_ratio,omitempty"`
	PeerRSSRatio float64 `json:"peer_rss_ratio,omitempty"`
	// Tiers, for a two-tier scenario, are the edge's and the cloud's
	// shares; the figures above are then the whole: points out and latency
	// of the cloud (end to end), CPU of every flowd process.
	Tiers []*TierResult `json:"tiers,omitempty"`
	// Problems lists what went wrong (a loss, a missing count).
	Problems []string `json:"problems,omitempty"`
}

// Truth is the ground truth a run is checked against.
type Truth struct {
	// Published is what the publishers say the broker accepted.
	Published int64 `json:"published,omitempty"`
	// Received is what the sources took in (final status).
	Received int64 `json:"received,omitempty"`
	// Delivered is what the sinks report delivered (final status).
	Delivered int64 `json:"delivered"`
	// InTopic is the points read back from the Kafka topic after the drain.
	InTopic int64  `json:"in_topic,omitempty"`
	Topic   string `json:"topic,omitempty"`
}

// TierResult is one tier's share of a two-tier run: its processes'
// CPU, memory and counts, and its sinks' latency (for the cloud tier, from
// the publisher's timestamp to Cassandra's acknowledgement: end to end).
type TierResult struct {
	Tier         string  `json:"tier"`
	Processes    int     `json:"processes"`
	PointsInPerS float64 `json:"points_in_per_s"`
	PointsOutPS  float64 `json:"points_out_per_s"`
	CPUCores     float64 `json:"cpu_cores"`
	// CPUMicrosPerPoint is the tier's CPU time per point it delivered.
	CPUMicrosPerPoint float64 `json:"cpu_us_per_point"`
	RSSPeakMB         float64 `json:"rss_peak_mb"`
	LatencyP50        float64 `json:"latency_p50_ms"`
	LatencyP99        float64 `json:"latency_p99_ms"`
	LatencyMax        float64 `json:"latency_max_ms"`
	PointsIn          int64   `json:"points_in"`
	PointsOut         int64   `json:"points_out"`
	PointsLost        int64   `json:"points_lost"`
	// Duplicates is what the tier took in more than once (at-least-once:
	// points redelivered after a rebalance or a retried commit).
	Duplicates int64 `json:"duplicates,omitempty"`
	// CPUMicrosPerPointRun is the tier's CPU time over its processes' whole
	// life (start, measured window, drain) per point delivered: the
	// per-point cost without the window's timing.
	CPUMicrosPerPointRun float64 `json:"cpu_us_per_point_run"`
}

func printBench(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\t", r.Scenario)
	if r.Peer != nil {
		fmt.Fprintf(tw, "%s\t", r.Peer.Scenario)
	}
	fmt.Fprintln(tw)
	row := func(name string, f func(*Result) string) {
		fmt.Fprintf(tw, "%s\t%s\t", name, f(r))
		if r.Peer != nil {
			fmt.Fprintf(tw, "%s\t", f(r.Peer))
		}
		fmt.Fprintln(tw)
	}
	row("duration", func(r *Result) string { return fmt.Sprintf("%.0f s", r.DurationS) })
	row("points in/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.PointsInPerS) })
	row("points out/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.PointsOutPS) })
	row("latency p50/p99/max", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f ms", r.LatencyP50, r.LatencyP99, r.LatencyMax)
	})
	row("cpu (cores)", func(r *Result) string { return fmt.Sprintf("%.3f", r.CPUCores) })
	row("rss peak", func(r *Result) string { return fmt.Sprintf("%.0f MB", r.RSSPeakMB) })
	row("points per cpu-second", func(r *Result) string { return fmt.Sprintf("%.0f", r.PointsPerCPUSecond) })
	row("points lost", func(r *Result) string { return strconv.FormatInt(r.PointsLost, 10) })
	for _, t := range r.Tiers {
		fmt.Fprintf(tw, "tier %s (%d)\t%.0f → %.0f points/s, %.3f cores, %.1f µs cpu/point (whole run %.1f), p99 %.0f ms, rss peak %.0f MB, in %d, out %d, lost %d, duplicates %d\t\n",
			t.Tier, t.Processes, t.PointsInPerS, t.PointsOutPS, t.CPUCores, t.CPUMicrosPerPoint, t.CPUMicrosPerPointRun, t.LatencyP99, t.RSSPeakMB, t.PointsIn, t.PointsOut, t.PointsLost, t.Duplicates)
	}
	if t := r.Truth; t != nil {
		var parts []string
		if t.Published > 0 {
			parts = append(parts, fmt.Sprintf("published %d", t.Published))
		}
		parts = append(parts, fmt.Sprintf("received %d", t.Received), fmt.Sprintf("delivered %d", t.Delivered))
		if t.Topic != "" {
			parts = append(parts, fmt.Sprintf("read back from Kafka %d", t.InTopic))
		}
		fmt.Fprintf(tw, "counts\t%s\t\n", strings.Join(parts, ", "))
	}
	if r.Peer != nil {
		fmt.Fprintf(tw, "flowd vs peer\t%.1f× points per cpu-second, %.1f× less memory\t\n", r.PeerCPURatio, r.PeerRSSRatio)
	}
	if r.Anchor != "" && r.Anchor != "-" {
		fmt.Fprintf(tw, "anchor\t%s\t\n", r.Anchor)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(tw, "problem\t%s\t\n", p)
	}
	tw.Flush()
}
