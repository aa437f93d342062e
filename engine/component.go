package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// Source produces batches. Run blocks until the source has ended (return nil:
// a file at its end) or ctx is cancelled (shutdown: return promptly). A source
// that loses its peer reconnects inside Run or returns an error, after which
// the engine closes it, backs off and connects it again.
type Source interface {
	Run(ctx context.Context, out Output) error
}

// Output is where a source hands its points to the pipeline.
type Output interface {
	// Emit takes ownership of points (get them from GetPoints) and blocks while
	// the pipeline is full: that is backpressure. When ctx ends while it would
	// block, Emit returns ctx's error; the points not handed on are counted as
	// dropped (shutdown) and settled with that error. A source that cannot
	// wait longer than some time of its own (its peer must be served) gives
	// Emit a context ended with the cause ErrBackpressure
	// (context.WithTimeoutCause): those points count as dropped for
	// backpressure instead, and the source must not count them again.
	//
	// done, which may be nil, is called once, from any goroutine, when every
	// sink has settled the points and the dead-letter sink has taken any of
	// them that were rejected (including the source's own rejects reported
	// through Env.Reject since its last Emit; points may then be empty). Its
	// argument is the merged outcome: nil (delivered), an error wrapping
	// ErrRejected (settled for good: commit it), or another error (not
	// delivered: do not commit, the data must come again).
	Emit(ctx context.Context, points []Point, done func(error)) error
}

// Transform maps and filters points. Process may rewrite in place, writing
// in[i] only after reading it (the filter pattern), and return a prefix of in;
// or return a slice of its own, which the engine copies before the next call.
// Points it drops on purpose count as acknowledged. A transform with state
// commits it with the outcome of what it passed (Env.OnAck), and one that
// holds points back keeps their acknowledgement open (Env.Hold, Env.Attach).
type Transform interface {
	Process(ctx context.Context, in []Point) []Point
}

// Flusher is a Transform that holds points back (windows). Flush is called
// every FlushInterval and once with final=true when the pipeline drains.
type Flusher interface {
	Flush(ctx context.Context, final bool) []Point
	FlushInterval() time.Duration
}

// Sink delivers points. Write returns once it has settled every point:
//
//   - nil: every point is durably taken (delivered);
//   - a *WriteError: per point — those marked with Reject can never be
//     written (the engine routes them to the dead-letter sink and counts them
//     once, under the reason given), those marked with Retry are written again
//     after a backoff, and the rest are delivered. When nothing is marked
//     Retry but Err is set, every point not rejected is retried;
//   - any other error: nothing was taken; the engine retries the same points
//     with backoff.
//
// A sink never calls Env.Reject inside Write: settling is the engine's job, so
// a retried write cannot reject (or count) a point twice. The slice is only
// valid during the call; a retry passes only the points still to be written,
// in their original order.
type Sink interface {
	Write(ctx context.Context, points []Point) error
}

// AsyncSink is implemented by sinks that keep several writes in flight (a
// Kafka producer settling records through promises). The engine calls
// WriteAsync for up to max_in_flight batches at once (buffer block; default
// MaxInFlight) and still acknowledges batches upstream in the order it took
// them from the buffer.
//
// WriteAsync starts writing points and calls settle exactly once, from any
// goroutine, with what Write would have returned (nil, a *WriteError, or an
// error). It may block while the sink's own buffer is full — that is
// backpressure — but must return when ctx ends. points stay valid until
// settle. WriteAsync may be called again before earlier writes settled, also
// concurrently (a retry after a backoff).
type AsyncSink interface {
	Sink
	WriteAsync(ctx context.Context, points []Point, settle func(error))
	// MaxInFlight is the default number of writes in flight.
	MaxInFlight() int
}

// ErrRejected is the outcome of a batch some of whose points were rejected
// (dead-lettered, or dropped and counted when the pipeline has no dead-letter
// sink): retrying them would not help, so a source commits such a batch just
// like a delivered one. Test for it with errors.Is.
var ErrRejected = errors.New("flowd: points rejected")

// ErrBackpressure is the context cause with which a source gives up an
// Emit that waited too long for room (see Output.Emit).
var ErrBackpressure = errors.New("flowd: pipeline full")

// emitDropReason is the drop reason of points an Emit gave up on.
func emitDropReason(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), ErrBackpressure) {
		return "backpressure"
	}
	return "shutdown"
}

// WriteError reports the points of a Write that were not delivered. The zero
// value is ready to use; indices refer to the slice passed to that Write.
type WriteError struct {
	// Err is why points must be retried (the retried points' cause).
	Err      error
	rejected []Rejection
	retry    []int
}

// Rejection is one point a Write rejected.
type Rejection struct {
	Index  int
	Reason string
	Err    error
}

// Reject marks points[i] as never writable, with a reason label (a short
// snake_case word such as "too_large") and the error that explains it.
func (e *WriteError) Reject(i int, reason string, err error) {
	e.rejected = append(e.rejected, Rejection{i, reason, err})
}

// RejectSub marks every point of sub, a sub-slice of the Write's points, as
// never writable.
func (e *WriteError) RejectSub(points, sub []Point, reason string, err error) {
	if len(sub) == 0 || len(points) == 0 {
		return
	}
	first := (uintptr(unsafe.Pointer(&sub[0])) - uintptr(unsafe.Pointer(&points[0]))) / unsafe.Sizeof(Point{})
	if uintptr(unsafe.Pointer(&sub[0])) < uintptr(unsafe.Pointer(&points[0])) || first+uintptr(len(sub)) > uintptr(len(points)) {
		panic("engine: RejectSub: not a sub-slice of the written points")
	}
	for k := range sub {
		e.Reject(int(first)+k, reason, err)
	}
}

// Retry marks points[i] to be written again.
func (e *WriteError) Retry(i int) { e.retry = append(e.retry, i) }

// Rejections lists the points marked with Reject.
func (e *WriteError) Rejections() []Rejection { return e.rejected }

// Retries lists the points marked with Retry.
func (e *WriteError) Retries() []int { return e.retry }

// Result is what Write returns: nil when no point was marked and Err is nil,
// e itself otherwise.
func (e *WriteError) Result() error {
	if len(e.rejected) == 0 && len(e.retry) == 0 {
		return e.Err
	}
	return e
}

// Reset empties e for reuse by the next Write.
func (e *WriteError) Reset() {
	e.Err, e.rejected, e.retry = nil, e.rejected[:0], e.retry[:0]
}

func (e *WriteError) Error() string {
	s := fmt.Sprintf("%d points rejected", len(e.rejected))
	if len(e.rejected) > 0 && e.rejected[0].Err != nil {
		s += " (" + e.rejected[0].Err.Error() + ")"
	}
	if e.Err != nil {
		s += ", retrying: " + e.Err.Error()
	}
	return s
}

func (e *WriteError) Unwrap() error { return e.Err }

// WriteSizer is implemented by sinks that write large batches more
// efficiently than small ones (Cassandra groups the rows of one partition).
// When more batches are already queued for such a sink, the engine hands them
// to a single Write until it holds at least WriteSize points (it never waits
// for more), and acknowledges each of them once that Write succeeds.
type WriteSizer interface {
	WriteSize() int
}

// Connector is implemented by sinks that open a connection before use. The
// engine retries Connect with backoff until it succeeds or shutdown. Sources
// connect (and reconnect) inside Run; the engine does not call their Connect.
type Connector interface {
	Connect(ctx context.Context) error
}

// Closer is implemented by components that hold resources.
type Closer interface {
	Close(ctx context.Context) error
}

// Kind of component.
type ComponentKind string

const (
	KindSource    ComponentKind = "source"
	KindTransform ComponentKind = "transform"
	KindSink      ComponentKind = "sink"
)

// Expr is an expression string from the config with where it was written, so
// a compile error can point inside the string.
type Expr struct {
	Src   string
	Range Range
}

// Range is where something was written in a config file, for errors that
// name file:line:col. The config loader fills it in; the engine and the
// components only carry it, so they need no HCL.
type Range struct {
	Filename   string
	Start, End Pos
}

// String is file:line,col-col (file:line,col-line,col across lines), as HCL
// writes its ranges.
func (r Range) String() string {
	if r.Start.Line == r.End.Line {
		return fmt.Sprintf("%s:%d,%d-%d", r.Filename, r.Start.Line, r.Start.Column, r.End.Column)
	}
	return fmt.Sprintf("%s:%d,%d-%d,%d", r.Filename, r.Start.Line, r.Start.Column, r.End.Line, r.End.Column)
}

// Pos is a place in a config file: line and column count from 1 (the column
// in characters), Byte from 0.
type Pos struct {
	Line, Column, Byte int
}

// Size is a byte count written as "512MiB", "1GB" or a plain number.
type Size int64

// FieldError is returned by a component constructor to blame one attribute;
// Offset (bytes into an Expr's source, or -1) narrows it to a column.
type FieldError struct {
	Field  string
	Expr   *Expr
	Offset int
	Err    error
	// Range, when set, is where the fault is (an attribute inside a nested
	// block, see BlockPos); it wins over Field's attribute.
	Range *Range
}

// BlockPos is where a nested config block and its attributes were written.
// A block struct with a field `Pos BlockPos` (no hcl tag) gets it filled in,
// so a constructor can blame an attribute several blocks deep.
type BlockPos struct {
	Block Range
	Attrs map[string]Range
}

// At is the range of attribute name, or of the block when it was not written.
func (p BlockPos) At(name string) *Range {
	if r, ok := p.Attrs[name]; ok {
		return &r
	}
	return &p.Block
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// ExprError blames a position inside an expression.
func ExprError(field string, x *Expr, offset int, err error) error {
	return &FieldError{Field: field, Expr: x, Offset: offset, Err: err}
}

// Env is what a component gets from the engine: its identity, a logger, the
// data directory, and hooks to report state and rejected points.
type Env struct {
	Pipeline string
	Kind     ComponentKind
	Type     string
	Name     string
	Logger   *slog.Logger
	DataDir  string
	// Metrics registers the component's own metrics; pipeline and component
	// labels are added. Nil means the metrics are kept but not exported.
	Metrics prometheus.Registerer
	// Shard is this replica's share of the assets (service.shard): a source
	// that addresses assets reads only those Shard.Owns. The zero value owns
	// every asset.
	Shard Shard
	// AdminAddr is service.http_addr (metrics, health, status), so a source
	// that listens itself can refuse to share its port.
	AdminAddr string
	// Codecs are the payload formats of this build (format attributes).
	Codecs *Codecs

	node *node // set when the pipeline is built
}

// MustRegister registers component metrics, ignoring a second registration
// of the same metric (a component built twice, as in validate).
func (e *Env) MustRegister(cs ...prometheus.Collector) {
	if e == nil || e.Metrics == nil {
		return
	}
	for _, c := range cs {
		if err := e.Metrics.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}

// SetState reports the component's connection state (shown in status and
// metrics). err, when not nil, becomes the component's last_error (secrets
// redacted); it stays shown while the component is starting or reconnecting
// and is cleared when it reports StateConnected with a nil error.
func (e *Env) SetState(s State, err error) {
	if e != nil && e.node != nil {
		e.node.setState(s, err)
	}
}

// Reject counts points the component could not process (a decode error, an
// expression error, a rejected write) and routes copies to the pipeline's
// dead-letter sink when one is configured.
//
// From a source, the dead letters travel with its next Emit: that batch's
// done waits until the dead-letter sink has taken them (a source whose batch
// was all rejected emits an empty batch for this). From a transform's
// Process, they hold the acknowledgement of the batch being processed.
// Sinks do not call Reject: their Write returns a *WriteError instead.
func (e *Env) Reject(points []Point, reason string, err error) {
	if e == nil || e.node == nil {
		return
	}
	n := e.node
	switch n.cfg.Kind {
	case KindSource:
		n.receivedOwn(len(points))
		n.pendingDead(points, reason, err)
	default:
		n.reject(points, reason, err, n.cur.Load())
	}
}

// OnAck registers fn to run once the points the current Process (or Flush)
// call returns have been settled by every sink downstream, with their merged
// outcome: nil (delivered), an error wrapping ErrRejected, or another error
// (not delivered: the source will see it again, or it was lost at shutdown).
// Stateful transforms commit their state here, not when they pass a point,
// so that a crash or a failed delivery never leaves state ahead of the sinks.
// When the call returns no points, fn runs at once with nil. Only call it
// from Process or Flush.
func (e *Env) OnAck(fn func(err error)) {
	if e != nil && e.node != nil {
		e.node.onAck = append(e.node.onAck, fn)
	}
}

// AcksTracked reports whether OnAck callbacks will run: true once the
// component is part of a running pipeline. A transform used on its own (a
// unit test, a replay tool) commits its state as it goes instead.
func (e *Env) AcksTracked() bool { return e != nil && e.node != nil }

// Hold keeps the acknowledgement of the batch in the current Process call
// open, for a transform that folds points into state it emits later (a
// window): pass the Hold to Attach in the call that emits the result, or
// Release it. Only call it from Process.
func (e *Env) Hold() Hold {
	if e == nil || e.node == nil {
		return Hold{}
	}
	a := e.node.cur.Load()
	if a != nil {
		a.refs.Add(1)
	}
	return Hold{a}
}

// Attach ties h to the points the current Process or Flush call returns: h
// is settled with their merged outcome once every sink has settled them (at
// once, with nil, when the call returns nothing).
func (e *Env) Attach(h Hold) {
	if e != nil && e.node != nil && h.a != nil {
		e.node.attached = append(e.node.attached, h.a)
	}
}

// Hold is an open acknowledgement of source data; the zero value holds
// nothing.
type Hold struct{ a *ack }

// Release settles h directly with err (nil: taken).
func (h Hold) Release(err error) {
	if h.a != nil {
		h.a.settle(err)
	}
}

// RejectAck is Reject for a source that must know when its dead letters are
// durable (to commit past them): done runs once the dead-letter sink has
// taken them (nil) or could not (an error), or at once with nil when there
// is no dead-letter sink.
func (e *Env) RejectAck(points []Point, reason string, err error, done func(error)) {
	if e == nil || e.node == nil {
		if done != nil {
			done(nil)
		}
		return
	}
	b := NewBatch(nil, done)
	e.node.receivedOwn(len(points))
	e.node.reject(points, reason, err, b.ack)
	// The dead letters (if any) hold their own reference; ours goes now.
	b.Ack(nil)
}

// Drop counts points dropped on purpose that never made it into a batch
// (from a source: received, and in its received count, but never emitted).
func (e *Env) Drop(n int, reason string) {
	if e != nil && e.node != nil && n > 0 {
		e.node.receivedOwn(n)
		e.node.dropped(n, reason)
	}
}

// State of a component.
type State string

const (
	StateStarting   State = "starting"
	StateConnected  State = "connected"
	StateConnecting State = "reconnecting"
	StateFailing    State = "failing"
	StateStopped    State = "stopped"
)

// Spec declares a component once: its name, its documentation and its config
// struct, whose tags drive HCL decoding, validation and the generated docs.
//
// Config struct tags: `hcl:"name"` (optional attribute), `hcl:"name,required"`,
// `hcl:"name,block"` (a nested block: a struct, pointer to struct or slice of
// structs), `hcl:"name,label"` (a block label), `default:"…"`, `doc:"…"`,
// `enum:"a|b|c"`. An embedded struct without an hcl name is a shared group
// of attributes (a connection, TLS, authentication): its fields are
// written flat, as if declared in place, and the embedding field may set
// the component's own defaults and docs for them with
// `default.NAME:"…"` and `doc.NAME:"…"`. Types other than the kinds
// (duration, size, expression) are decoded by config.RegisterType.
type Spec struct {
	Kind        ComponentKind
	Type        string
	Summary     string
	Description string
	Example     string
	config      reflect.Type
	build       func(cfg any, env *Env) (any, error)
}

// ConfigType is the component's config struct type.
func (s *Spec) ConfigType() reflect.Type { return s.config }

// Build constructs the component from a decoded *Config.
func (s *Spec) Build(cfg any, env *Env) (any, error) { return s.build(cfg, env) }

// Info is the documentation part of a spec.
type Info struct {
	Type        string
	Summary     string
	Description string
	Example     string
}

func newSpec[C any, T any](kind ComponentKind, info Info, build func(*C, *Env) (T, error)) *Spec {
	return &Spec{
		Kind: kind, Type: info.Type, Summary: info.Summary, Description: info.Description, Example: info.Example,
		config: reflect.TypeFor[C](),
		build: func(cfg any, env *Env) (any, error) {
			return build(cfg.(*C), env)
		},
	}
}

// SourceSpec declares a source with config type C.
func SourceSpec[C any](info Info, build func(*C, *Env) (Source, error)) *Spec {
	return newSpec(KindSource, info, build)
}

// TransformSpec declares a transform with config type C.
func TransformSpec[C any](info Info, build func(*C, *Env) (Transform, error)) *Spec {
	return newSpec(KindTransform, info, build)
}

// SinkSpec declares a sink with config type C.
func SinkSpec[C any](info Info, build func(*C, *Env) (Sink, error)) *Spec {
	return newSpec(KindSink, info, build)
}

// Registry holds the component specs a loader may use. It is built explicitly
// and passed to the loader: there is no global registry.
type Registry struct {
	specs map[ComponentKind]map[string]*Spec
	// Codecs are handed to every component the loader builds (Env.Codecs).
	Codecs *Codecs
}

func NewRegistry(specs ...*Spec) *Registry {
	r := &Registry{specs: map[ComponentKind]map[string]*Spec{}}
	for _, s := range specs {
		r.Add(s)
	}
	return r
}

// WithCodecs sets the codecs handed to components (Env.Codecs) and returns r.
func (r *Registry) WithCodecs(c *Codecs) *Registry {
	r.Codecs = c
	return r
}

// Add registers a spec; a second spec of the same kind and type is a programming error.
func (r *Registry) Add(s *Spec) {
	m := r.specs[s.Kind]
	if m == nil {
		m = map[string]*Spec{}
		r.specs[s.Kind] = m
	}
	if _, dup := m[s.Type]; dup {
		panic(fmt.Sprintf("engine: %s %q registered twice", s.Kind, s.Type))
	}
	m[s.Type] = s
}

// Lookup finds a spec.
func (r *Registry) Lookup(kind ComponentKind, typ string) (*Spec, bool) {
	s, ok := r.specs[kind][typ]
	return s, ok
}

// Types lists the registered types of a kind, sorted.
func (r *Registry) Types(kind ComponentKind) []string {
	var out []string
	for t := range r.specs[kind] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// All lists every spec, sources first, each kind sorted by type.
func (r *Registry) All() []*Spec {
	var out []*Spec
	for _, k := range []ComponentKind{KindSource, KindTransform, KindSink} {
		for _, t := range r.Types(k) {
			out = append(out, r.specs[k][t])
		}
	}
	return out
}

// ID is "kind.name", the reference form used in configs.
func ID(kind ComponentKind, name string) string { return string(kind) + "." + name }

// SplitID is the inverse of ID.
func SplitID(id string) (ComponentKind, string) {
	k, n, _ := strings.Cut(id, ".")
	return ComponentKind(k), n
}
