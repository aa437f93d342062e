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

	"github.com/hashicorp/hcl/v2"
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
	// the pipeline is full: that is backpressure. done, which may be nil, is
	// called once every sink has taken the points (nil) or given up on them.
	Emit(ctx context.Context, points []Point, done func(error)) error
}

// Transform maps and filters points. Process may rewrite in place, writing
// in[i] only after reading it (the filter pattern), and return a prefix of in;
// or return a slice of its own, which the engine copies before the next call.
// Points it drops on purpose count as acknowledged.
type Transform interface {
	Process(ctx context.Context, in []Point) []Point
}

// Flusher is a Transform that holds points back (windows). Flush is called
// every FlushInterval and once with final=true when the pipeline drains.
type Flusher interface {
	Flush(ctx context.Context, final bool) []Point
	FlushInterval() time.Duration
}

// Sink delivers points. Write returns once the points are durably taken (nil)
// or not (error: the engine retries the same points with backoff). The slice is
// only valid during the call.
type Sink interface {
	Write(ctx context.Context, points []Point) error
}

// WriteSizer is implemented by sinks that write large batches more
// efficiently than small ones (Cassandra groups the rows of one partition).
// When more batches are already queued for such a sink, the engine hands them
// to a single Write until it holds at least WriteSize points (it never waits
// for more), and acknowledges each of them once that Write succeeds.
type WriteSizer interface {
	WriteSize() int
}

// Connector is implemented by components that open a connection before use.
// The engine retries Connect with backoff until it succeeds or shutdown.
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
	Range hcl.Range
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
	Range *hcl.Range
}

// BlockPos is where a nested config block and its attributes were written.
// A block struct with a field `Pos BlockPos` (no hcl tag) gets it filled in,
// so a constructor can blame an attribute several blocks deep.
type BlockPos struct {
	Block hcl.Range
	Attrs map[string]hcl.Range
}

// At is the range of attribute name, or of the block when it was not written.
func (p BlockPos) At(name string) *hcl.Range {
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

// SetState reports the component's connection state (shown in status and metrics).
func (e *Env) SetState(s State, err error) {
	if e != nil && e.node != nil {
		e.node.setState(s, err)
	}
}

// Reject counts points the component could not process (a decode error, an
// expression error, a rejected write) and routes copies to the pipeline's
// dead-letter sink when one is configured.
func (e *Env) Reject(points []Point, reason string, err error) {
	if e == nil || e.node == nil {
		return
	}
	e.node.reject(points, reason, err)
}

// Drop counts points dropped on purpose that never made it into a batch.
func (e *Env) Drop(n int, reason string) {
	if e != nil && e.node != nil && n > 0 {
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
// `enum:"a|b|c"`.
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
