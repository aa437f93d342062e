package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Bounds a tap request cannot exceed, so a tap stays cheap on a busy gateway.
const (
	tapMaxLimit    = 1000                   // points per interval
	tapMinInterval = 100 * time.Millisecond // shortest rate-limit interval
	tapQueue       = 1024                   // encoded points waiting for a slow reader
	tapMaxStreams  = 8                      // taps open at once
)

// withTap adds GET /api/tap to the status handler. It lives here, not in the
// engine, because it speaks the canonical JSON of engine/codec. The points
// are data, not status: unless remote is set, only clients on loopback may
// tap (which includes kubectl port-forward and an SSH tunnel).
func withTap(current func() *engine.Runtime, remote bool, h http.Handler) http.Handler {
	tap := tapHandler(current)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/tap", func(w http.ResponseWriter, r *http.Request) {
		if !remote && !fromLoopback(r) {
			http.Error(w, "tapping is allowed from loopback only (flowd run --tap-remote allows it from anywhere)", http.StatusForbidden)
			return
		}
		tap(w, r)
	})
	mux.Handle("/", h)
	return mux
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tapEvent is one line of the /api/tap stream. Exactly one group is set: the
// components tapped (first line), a point, a count of skipped points, or an
// error that ends the stream.
type tapEvent struct {
	Tapping   []string        `json:"tapping,omitempty"`
	Pipeline  string          `json:"pipeline,omitempty"`
	Component string          `json:"component,omitempty"`
	Point     json.RawMessage `json:"point,omitempty"`
	Skipped   int64           `json:"skipped,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// appendTapLine appends {"pipeline":…,"component":…,"point":{canonical}}\n,
// the line shared by the tap stream and the dry-run output.
func appendTapLine(b []byte, pipeline, component string, p *engine.Point) []byte {
	b = append(b, `{"pipeline":`...)
	b = codec.AppendString(b, pipeline)
	b = append(b, `,"component":`...)
	b = codec.AppendString(b, component)
	b = append(b, `,"point":`...)
	b = codec.AppendPoint(b, p)
	return append(b, '}', '\n')
}

// tapHandler streams the points leaving the selected components as JSON
// lines: ?component=PATTERN (repeatable), inputs_of=PATTERN (repeatable: the
// components feeding it; with neither, every component), sample=N
// (one point in N), limit=N points per interval=D (default 100 per 500ms).
func tapHandler(current func() *engine.Runtime) http.HandlerFunc {
	var open atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		if open.Add(1) > tapMaxStreams {
			open.Add(-1)
			http.Error(w, fmt.Sprintf("%d taps are open already; close one", tapMaxStreams), http.StatusTooManyRequests)
			return
		}
		defer open.Add(-1)
		cfg, err := tapConfig(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fl, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		lines := make(chan []byte, tapQueue)
		cfg.Emit = queueTapLines(lines)
		rt := current()
		tap, err := rt.Tap(cfg)
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, engine.ErrNoComponent) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
			return
		}
		streamTap(w, fl, r, current, rt, tap, cfg, lines)
	}
}

// queueTapLines returns the Emit of a tap feeding lines: components call it
// on their own goroutine, so it must never block.
func queueTapLines(lines chan<- []byte) func(pipeline, component string, p *engine.Point) bool {
	return func(pipeline, component string, p *engine.Point) bool {
		select {
		case lines <- appendTapLine(make([]byte, 0, 192), pipeline, component, p):
			return true
		default:
			return false // the reader is behind: skip, never block the component
		}
	}
}

// streamTap writes the tap's lines to w until the client leaves or the
// write fails, reporting skipped points every cfg.Interval and re-tapping
// when a reload replaced rt. It closes whichever tap is open when it ends.
func streamTap(w http.ResponseWriter, fl http.Flusher, r *http.Request, current func() *engine.Runtime, rt *engine.Runtime, tap *engine.TapHandle, cfg engine.TapConfig, lines <-chan []byte) {
	var err error
	defer func() {
		if tap != nil { // nil when re-tapping after a reload failed
			tap.Close()
		}
	}()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	enc.Encode(tapEvent{Tapping: tap.Components})
	fl.Flush()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-lines:
			if _, err := w.Write(b); err != nil {
				return
			}
			writeQueued(w, lines)
			fl.Flush()
		case <-tick.C:
			if n := tap.Skipped(); n > 0 {
				enc.Encode(tapEvent{Skipped: n})
				fl.Flush()
			}
			// A reload replaced the runtime: follow it.
			if now := current(); now != rt {
				tap.Close()
				rt = now
				if tap, err = rt.Tap(cfg); err != nil {
					enc.Encode(tapEvent{Error: "after reload: " + err.Error()})
					return
				}
			}
		}
	}
}

// writeQueued writes the lines already waiting, so one flush carries them
// all.
func writeQueued(w io.Writer, lines <-chan []byte) {
	for more := true; more; {
		select {
		case b := <-lines:
			w.Write(b)
		default:
			more = false
		}
	}
}

// tapConfig reads a tap request's query (see tapHandler), within the bounds.
func tapConfig(q url.Values) (engine.TapConfig, error) {
	cfg := engine.TapConfig{Patterns: q["component"], InputsOf: q["inputs_of"], Sample: 1, Limit: 100, Interval: 500 * time.Millisecond}
	var err error
	if v := q.Get("sample"); v != "" {
		if cfg.Sample, err = strconv.Atoi(v); err != nil || cfg.Sample < 1 {
			return cfg, errors.New("sample: want a whole number ≥ 1")
		}
	}
	if v := q.Get("limit"); v != "" {
		if cfg.Limit, err = strconv.Atoi(v); err != nil || cfg.Limit < 1 || cfg.Limit > tapMaxLimit {
			return cfg, fmt.Errorf("limit: want 1 to %d points per interval", tapMaxLimit)
		}
	}
	if v := q.Get("interval"); v != "" {
		if cfg.Interval, err = time.ParseDuration(v); err != nil || cfg.Interval < tapMinInterval {
			return cfg, fmt.Errorf("interval: want a duration of at least %s", tapMinInterval)
		}
	}
	return cfg, nil
}

// tapUsage is flowd tap's help; the flag defaults follow it.
const tapUsage = `Usage: flowd tap [flags] [COMPONENT...]

Prints the points leaving components of a running flowd, one canonical JSON
line each: what a source or transform passes on, what a sink delivered.
COMPONENT is kind.name or pipeline/kind.name, with * globs; --inputs-of taps
what arrives at a component instead; with neither, every component is tapped. Tapping is sampled and rate limited, so it is safe in production;
points beyond the limit are skipped (counted on stderr), never held up.

Examples:
  flowd tap transform.changes                  # what the cov transform passes
  flowd tap --count 10 'demo/source.*'         # ten points from demo's sources
  flowd tap --meta --limit 5 --interval 1s     # five points a second, any component
  flowd tap --inputs-of sink.cloud             # what reaches the cloud sink
  flowd tap --http 127.0.0.1:9181 sink.cloud | jq .value   # another instance

flowd answers taps from loopback only (unless run with --tap-remote): tap a
gateway through a tunnel, ssh -L 9180:127.0.0.1:9180 gateway, or
kubectl port-forward pod/flowd-0 9180.

Flags:
`

func cmdTap(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	addr := fs.String("http", "127.0.0.1:9180", "the running flowd's HTTP address (its --http or service.http_addr)")
	sample := fs.Int("sample", 1, "pass one point in this many, per component")
	limit := fs.Int("limit", 100, fmt.Sprintf("most points per --interval, over all tapped components (at most %d)", tapMaxLimit))
	interval := fs.Duration("interval", 500*time.Millisecond, "rate-limit interval")
	count := fs.Int("count", 0, "exit after this many points (0: until Ctrl-C)")
	duration := fs.Duration("duration", 0, "exit after this long (0: until Ctrl-C)")
	var inputsOf listFlag
	fs.Var(&inputsOf, "inputs-of", "tap what arrives at these components: the outputs of their inputs (repeatable)")
	meta := fs.Bool("meta", false, `print {"pipeline","component","point"} per line instead of the point alone`)
	fs.Usage = func() {
		fmt.Fprint(stderr, tapUsage)
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	q := tapQuery(fs.Args(), inputsOf, *sample, *limit, *interval)

	ctx, stop := untilInterrupted(*duration)
	defer stop()
	resp, code := openTap(ctx, *addr, q, stderr)
	if resp == nil {
		return code
	}
	defer resp.Body.Close()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	printed, skipped, code := printTap(sc, stdout, stderr, *meta, *count)
	if code == exitInvalid {
		return code
	}
	reportSkipped(stderr, printed, skipped)
	if code == exitOK || ctx.Err() != nil {
		return exitOK // --count reached, Ctrl-C or --duration
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "flowd tap: %v\n", err)
	} else {
		fmt.Fprintln(stderr, "flowd tap: flowd closed the stream (it stopped)")
	}
	return exitInvalid
}

// tapQuery is the /api/tap query of the command line's selection and limits;
// the running flowd validates them.
func tapQuery(components, inputsOf []string, sample, limit int, interval time.Duration) url.Values {
	q := url.Values{}
	for _, c := range components {
		q.Add("component", c)
	}
	for _, c := range inputsOf {
		q.Add("inputs_of", c)
	}
	q.Set("sample", strconv.Itoa(sample))
	q.Set("limit", strconv.Itoa(limit))
	q.Set("interval", interval.String())
	return q
}

// openTap starts the tap stream of the flowd at addr. On failure it reports
// on stderr and returns a nil response with the exit code.
func openTap(ctx context.Context, addr string, q url.Values, stderr io.Writer) (*http.Response, int) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(base, "/")+"/api/tap?"+q.Encode(), nil)
	if err != nil {
		fmt.Fprintf(stderr, "flowd tap: %v\n", err)
		return nil, exitUsage
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "flowd tap: cannot reach flowd at %s: %v\n", addr, err)
		return nil, exitInvalid
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(stderr, "flowd tap: %s: %s\n", resp.Status, strings.TrimSpace(string(msg)))
		return nil, exitInvalid
	}
	return resp, exitOK
}

// printTap prints the points of a tap stream, line by line so that `| jq`
// sees them as they come (with meta, the whole line), until count points
// (0: no limit), an error from flowd, or the stream's end. code is exitOK
// when count was reached, exitInvalid on an error (said on stderr), -1 when
// the stream ended.
func printTap(sc *bufio.Scanner, stdout, stderr io.Writer, meta bool, count int) (printed int, skipped int64, code int) {
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	for sc.Scan() {
		var ev tapEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintf(stderr, "flowd tap: bad line from flowd: %v\n", err)
			return printed, skipped, exitInvalid
		}
		switch {
		case ev.Tapping != nil:
			fmt.Fprintf(stderr, "flowd tap: tapping %s\n", strings.Join(ev.Tapping, ", "))
		case ev.Error != "":
			out.Flush()
			fmt.Fprintf(stderr, "flowd tap: %s\n", ev.Error)
			return printed, skipped, exitInvalid
		case ev.Skipped > 0:
			skipped += ev.Skipped
		case ev.Point != nil:
			if meta {
				out.Write(sc.Bytes())
			} else {
				out.Write(ev.Point)
			}
			out.WriteByte('\n')
			out.Flush()
			printed++
			if count > 0 && printed >= count {
				return printed, skipped, exitOK
			}
		}
	}
	return printed, skipped, -1
}

func reportSkipped(w io.Writer, printed int, skipped int64) {
	fmt.Fprintf(w, "flowd tap: %d points printed, %d skipped by the sample or rate limit\n", printed, skipped)
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
