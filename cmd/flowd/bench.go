package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/flowd/flowd/e2e/bench"
)

// cmdBench runs a benchmark scenario of the harness in e2e/bench.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o bench.Options
	fs.DurationVar(&o.Duration, "duration", 60*time.Second, "how long to measure")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object per scenario instead of a table")
	fs.StringVar(&o.Pipelines, "pipelines", "pipelines/bench", "directory of the scenario pipeline files")
	fs.BoolVar(&o.Peer, "peer", true, "also run the scenario's peer (Telegraf) where it has one")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of flowd's measured window to this file (flowd run --pprof); a two-tier scenario also writes the first cloud replica's to FILE.cloud")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd bench [--duration D] [--json] SCENARIO\n\nScenarios:")
		for _, s := range bench.Scenarios() {
			fmt.Fprintf(stderr, "  %-12s %s\n", s.Name, s.Summary)
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
	if !slices.ContainsFunc(bench.Scenarios(), func(s bench.Scenario) bool { return s.Name == fs.Arg(0) }) {
		fmt.Fprintf(stderr, "flowd bench: unknown scenario %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	o.Components = registry()
	switch bench.Run(fs.Arg(0), o, stdout, stderr) {
	case bench.OK:
		return exitOK
	case bench.Refused:
		return exitUsage
	}
	return exitInvalid
}
