// Package bench is flowd's benchmark harness, the code behind `flowd bench`:
// each scenario runs flowd on one pipeline file (pipelines/bench/) with the
// simulators and load generators of sim/ in separate processes of the same
// binary, measures flowd's own process over a steady window (rates and
// latency from its status, CPU and peak RSS from /proc) and checks what it
// delivered against ground truth outside flowd: the publishers' counts and
// the Kafka topic read back. Some scenarios run the same work on Telegraf
// afterwards, or add a cloud tier of flowd replicas reading the edge's topic.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flowd/flowd/engine"
)

// Options are the settings of a bench invocation (the flags of `flowd bench`).
type Options struct {
	// Duration is how long to measure.
	Duration time.Duration
	// JSON prints one JSON object per scenario instead of a table.
	JSON bool
	// Pipelines is the directory of the scenario pipeline files.
	Pipelines string
	// Peer also runs the scenario's peer (Telegraf) where it has one.
	Peer bool
	// CPUProfile, when set, is the file the CPU profile of flowd's measured
	// window goes to (a two-tier scenario's first cloud replica's to
	// CPUProfile.cloud).
	CPUProfile string
	// Components are the components of the flowd binary that runs: a
	// scenario that needs others is refused before anything starts.
	Components *engine.Registry
}

// Outcome is how an invocation ended.
type Outcome int

const (
	// OK: every run completed and lost nothing.
	OK Outcome = iota
	// Failed: a run failed or lost points, or could not start.
	Failed
	// Refused: the scenario cannot run as asked (unknown, a service it
	// needs not started, a pipeline file not there).
	Refused
)

// Scenario names a scenario and says what it runs.
type Scenario struct{ Name, Summary string }

// Scenarios lists every scenario in the order `flowd bench -h` shows them.
func Scenarios() []Scenario {
	var out []Scenario
	for _, s := range scenarios() {
		out = append(out, Scenario{Name: s.name, Summary: s.summary})
	}
	return out
}

// Run runs scenario name (or the scenarios it is a sequence of) and prints
// each result, as a table or JSON, to stdout; progress, problems and the
// logs of the processes it starts go to stderr.
func Run(name string, o Options, stdout, stderr io.Writer) Outcome {
	list := expand(name)
	if list == nil {
		fmt.Fprintf(stderr, "flowd bench: unknown scenario %q\n", name)
		return Refused
	}
	for _, sc := range list {
		for _, v := range sc.needs {
			if os.Getenv(v) == "" {
				fmt.Fprintf(stderr, "flowd bench %s: needs %s; start the services first: eval \"$(e2e/services.sh up)\"\n", sc.name, v)
				return Refused
			}
		}
	}
	tmp, err := os.MkdirTemp("", "flowd-bench-pipelines")
	if err != nil {
		fmt.Fprintf(stderr, "flowd bench: %v\n", err)
		return Failed
	}
	defer os.RemoveAll(tmp)
	files, outcome := pipelineFiles(list, o, tmp, stderr)
	if outcome != OK {
		return outcome
	}
	for i, sc := range list {
		out, abort := runOne(sc, files[i], o, stdout, stderr)
		if out != OK {
			outcome = out
		}
		if abort {
			break
		}
	}
	return outcome
}

// expand is the named scenario, or the scenarios it is a sequence of; nil
// for an unknown name.
func expand(name string) []scenario {
	top := findScenario(name)
	if top == nil {
		return nil
	}
	if len(top.parts) == 0 {
		return []scenario{*top}
	}
	var list []scenario
	for _, n := range top.parts {
		list = append(list, *findScenario(n))
	}
	return list
}

// pipelineFiles finds (or, for generated ones, writes into tmp) each
// scenario's pipeline file and refuses one that names components the
// flowd binary does not have.
func pipelineFiles(list []scenario, o Options, tmp string, stderr io.Writer) ([]string, Outcome) {
	files := make([]string, len(list))
	for i, sc := range list {
		path, err := pipelineFile(sc, o.Pipelines, tmp)
		files[i] = path
		var missing []string
		if err == nil {
			missing, err = MissingComponents(path, o.Components)
		}
		if err != nil {
			fmt.Fprintf(stderr, "flowd bench %s: %v\n", sc.name, err)
			return nil, Refused
		}
		if len(missing) > 0 {
			fmt.Fprintf(stderr, "flowd bench %s: needs %s, which this build does not have\n", sc.name, strings.Join(missing, ", "))
			return nil, Failed
		}
	}
	return files, OK
}

// runOne runs one scenario until it ends or SIGINT/SIGTERM and prints its
// result; abort says there is none, so the scenarios after it are not run.
func runOne(sc scenario, file string, o Options, stdout, stderr io.Writer) (out Outcome, abort bool) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if !o.Peer {
		sc.peer = nil
	}
	res, err := runBench(ctx, sc, file, o.Pipelines, o.Duration, o.CPUProfile, stderr)
	stop()
	if err != nil {
		fmt.Fprintf(stderr, "flowd bench %s: %v\n", sc.name, err)
		if res == nil {
			return Failed, true
		}
		res.Problems = append(res.Problems, err.Error())
		out = Failed
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printBench(stdout, res)
	}
	if res.PointsLost != 0 {
		out = Failed
	}
	return out, false
}
