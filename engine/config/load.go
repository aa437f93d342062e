// Package config loads HCL pipeline files into validated pipeline specs:
// parse, variables, service, then every pipeline's components decoded against
// their specs, references resolved and the graph checked, all before anything
// starts. Every problem is an hcl.Diagnostic with its source range, and all of
// them are reported, not only the first.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowd/flowd/engine"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Service is the optional service block.
type Service struct {
	HTTPAddr string `hcl:"http_addr" default:"127.0.0.1:9180" doc:"address of the metrics, health and status endpoint; loopback unless you mean to expose it"`
	DataDir  string `hcl:"data_dir" default:"./data" doc:"where disk buffers, certificates and component state live"`
	LogLevel string `hcl:"log_level" default:"info" enum:"debug|info|warn|error" doc:"log level"`
	// AllowedHosts are the Host names the admin endpoint answers besides its
	// own address and localhost (DNS rebinding guard).
	AllowedHosts []string `hcl:"allowed_hosts" doc:"names (Host header) the HTTP endpoint answers besides the address it is reached at and localhost, e.g. [\"gateway7.plant.local\"]; other Hosts get 403, so a web page cannot read it through DNS rebinding; [\"*\"] turns the check off"`
	// Shard splits assets across replicas that run the same configuration.
	Shard *engine.Shard `hcl:"shard,block" doc:"this replica's share of the assets when several replicas read the same plant: sources that address assets (opcua, sim) read only the assets whose name hashes to this index"`
}

// Pipeline holds the pipeline block's own attributes.
type Pipeline struct {
	LatencySLO   time.Duration `hcl:"latency_slo" default:"10s" doc:"end-to-end p99 latency target; readiness fails while it is exceeded"`
	StallTimeout time.Duration `hcl:"stall_timeout" default:"5m" doc:"readiness fails when a sink has delivered nothing for this long while its buffer holds points"`
	QueueSize    int           `hcl:"queue_size" default:"8" doc:"batches each component's input channel holds"`
}

// Config is a loaded, validated set of pipeline files.
type Config struct {
	Service   Service
	Pipelines []*engine.PipelineConfig
}

// Options control loading.
type Options struct {
	Registry *engine.Registry
	// Vars are values given on the command line (--var name=value); they win
	// over FLOWD_VAR_<name> environment variables, which win over defaults.
	Vars      map[string]string
	LookupEnv func(string) (string, bool)
	Logger    *slog.Logger
	// DataDir, when set, overrides service.data_dir.
	DataDir string
	// Metrics receives the components' own metrics (nil: not exported).
	Metrics prometheus.Registerer
}

// Loader keeps the parsed files so diagnostics can be printed with snippets.
type Loader struct {
	opts   Options
	parser *hclparse.Parser
}

func NewLoader(opts Options) *Loader {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Loader{opts: opts, parser: hclparse.NewParser()}
}

// Files returns the parsed files, for hcl.NewDiagnosticTextWriter.
func (l *Loader) Files() map[string]*hcl.File { return l.parser.Files() }

// ExpandPaths turns files and directories into a sorted list of .hcl files.
func ExpandPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.hcl"))
		if err != nil {
			return nil, err
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("%s: no .hcl files", p)
		}
		sort.Strings(matches)
		out = append(out, matches...)
	}
	return out, nil
}

// LoadFiles parses and validates files (a directory means its *.hcl files).
func (l *Loader) LoadFiles(paths []string) (*Config, hcl.Diagnostics) {
	files, err := ExpandPaths(paths)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read configuration", Detail: err.Error()}}
	}
	var diags hcl.Diagnostics
	var parsed []*hcl.File
	var names []string
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cannot read configuration", Detail: err.Error()})
			continue
		}
		f, d := l.parse(src, name)
		diags = append(diags, d...)
		if f != nil {
			parsed = append(parsed, f)
			names = append(names, name)
		}
	}
	if diags.HasErrors() {
		return nil, CapDiagnostics(diags)
	}
	cfg, d := l.load(parsed, names)
	return cfg, CapDiagnostics(append(diags, d...))
}

// LoadSource parses and validates one in-memory file.
func (l *Loader) LoadSource(filename string, src []byte) (*Config, hcl.Diagnostics) {
	f, diags := l.parse(src, filename)
	if diags.HasErrors() || f == nil {
		return nil, CapDiagnostics(diags)
	}
	cfg, d := l.load([]*hcl.File{f}, []string{filename})
	return cfg, CapDiagnostics(append(diags, d...))
}

// parse parses one file; a file that is not UTF-8 text (a binary, a file in
// another encoding) is one diagnostic, not one per byte HCL cannot read.
func (l *Loader) parse(src []byte, name string) (*hcl.File, hcl.Diagnostics) {
	if i := notText(src); i >= 0 {
		pos := hcl.InitialPos
		for _, c := range src[:i] {
			pos.Byte++
			pos.Column++
			if c == '\n' {
				pos.Line++
				pos.Column = 1
			}
		}
		end := pos
		end.Byte++
		end.Column++
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Not a text file",
			Detail:  fmt.Sprintf("Byte %d (0x%02x) is not UTF-8 text; a pipeline file is HCL text in UTF-8. Is this the right file?", i, src[i]),
			Subject: &hcl.Range{Filename: name, Start: pos, End: end}}}
	}
	return l.parser.ParseHCL(src, name)
}

// notText returns the offset of the first NUL byte or invalid UTF-8
// sequence in src, or -1.
func notText(src []byte) int {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == 0 || (r == utf8.RuneError && n <= 1) {
			return i
		}
		i += n
	}
	return -1
}

// MaxDiagnosticsPerFile bounds the diagnostics reported for one file: past
// it, one more says how many were left out (a garbled file cannot flood a
// terminal or a log).
const MaxDiagnosticsPerFile = 25

// CapDiagnostics keeps at most MaxDiagnosticsPerFile diagnostics per file,
// in order, and adds one per file that had more: an error if any of those
// left out is one, a warning otherwise (warnings never fail a file).
func CapDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	perFile := map[string]int{}
	omitted := map[string]hcl.DiagnosticSeverity{}
	var out hcl.Diagnostics
	var files []string
	for _, d := range diags {
		name := ""
		if d.Subject != nil {
			name = d.Subject.Filename
		}
		if perFile[name] == 0 {
			files = append(files, name)
		}
		perFile[name]++
		if perFile[name] <= MaxDiagnosticsPerFile {
			out = append(out, d)
		} else if omitted[name] != hcl.DiagError {
			omitted[name] = d.Severity
		}
	}
	for _, name := range files {
		if n := perFile[name] - MaxDiagnosticsPerFile; n > 0 {
			summary := "Too many errors"
			if omitted[name] != hcl.DiagError {
				summary = "Too many warnings"
			}
			d := &hcl.Diagnostic{Severity: omitted[name], Summary: summary,
				Detail: fmt.Sprintf("%d more diagnostic(s) in this file not shown; fix the ones above first.", n)}
			if name != "" {
				d.Subject = &hcl.Range{Filename: name, Start: hcl.InitialPos, End: hcl.InitialPos}
			}
			out = append(out, d)
		}
	}
	return out
}

var rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "service"},
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "pipeline", LabelNames: []string{"name"}},
}}

var variableSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "default"}, {Name: "description"}, {Name: "sensitive"},
}}

type fileContent struct {
	content *hcl.BodyContent
	dir     string
	src     []byte
}

func (l *Loader) load(files []*hcl.File, names []string) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var fcs []fileContent
	for i, f := range files {
		c, d := f.Body.Content(rootSchema)
		diags = append(diags, d...)
		fcs = append(fcs, fileContent{content: c, dir: filepath.Dir(names[i]), src: f.Bytes})
	}

	vars, d := l.variables(fcs)
	diags = append(diags, d...)
	varVal := cty.EmptyObjectVal
	if len(vars) > 0 {
		varVal = cty.ObjectVal(vars)
	}
	evalCtx := func(dir string) *hcl.EvalContext {
		return &hcl.EvalContext{
			Variables: map[string]cty.Value{"var": varVal},
			Functions: l.functions(dir),
		}
	}

	cfg := &Config{}
	if err := ApplyDefaults(reflect.ValueOf(&cfg.Service).Elem()); err != nil {
		panic(err)
	}
	diags = append(diags, decodeService(cfg, fcs, evalCtx)...)
	if l.opts.DataDir != "" {
		cfg.Service.DataDir = l.opts.DataDir
	}

	found, d := l.pipelines(cfg, fcs, vars, evalCtx)
	diags = append(diags, d...)
	if found == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No pipeline",
			Detail: "A configuration needs at least one pipeline block.", Subject: fileStart(files)})
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// decodeService decodes the single service block, wherever it is, into
// cfg.Service; a second one is reported and skipped.
func decodeService(cfg *Config, fcs []fileContent, evalCtx func(dir string) *hcl.EvalContext) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var serviceAt *hcl.Range
	for _, fc := range fcs {
		for _, b := range fc.content.Blocks.OfType("service") {
			if serviceAt != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate service block",
					Detail: "Only one service block is allowed; the first is at " + serviceAt.String() + ".", Subject: b.DefRange.Ptr()})
				continue
			}
			serviceAt = b.DefRange.Ptr()
			c, d := b.Body.Content(Schema(reflect.TypeFor[Service]()))
			diags = append(diags, d...)
			d = DecodeContent(c, reflect.ValueOf(&cfg.Service).Elem(), evalCtx(fc.dir))
			diags = append(diags, d...)
			if sh := cfg.Service.Shard; sh != nil && !d.HasErrors() {
				if err := sh.Valid(); err != nil {
					sb := c.Blocks.OfType("shard")[0]
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid shard",
						Detail: err.Error() + ".", Subject: sb.DefRange.Ptr(), Context: sb.Body.MissingItemRange().Ptr()})
				}
			}
		}
	}
	return diags
}

// pipelines decodes every pipeline block into cfg.Pipelines, fingerprinting
// each so a reload restarts only the pipelines whose inputs changed. found
// counts the distinct pipeline names, also of pipelines that failed.
func (l *Loader) pipelines(cfg *Config, fcs []fileContent, vars map[string]cty.Value, evalCtx func(dir string) *hcl.EvalContext) (found int, diags hcl.Diagnostics) {
	var shard engine.Shard
	if cfg.Service.Shard != nil {
		shard = *cfg.Service.Shard
	}
	seen := map[string]hcl.Range{}
	var claims []bufferClaim
	for _, fc := range fcs {
		for _, b := range fc.content.Blocks.OfType("pipeline") {
			name := b.Labels[0]
			if first, dup := seen[name]; dup {
				diags = append(diags, duplicate("pipeline", name, b.DefRange, first))
				continue
			}
			seen[name] = b.DefRange
			fp := newFingerprint(fc.src, b, fc.dir, vars, cfg.Service.DataDir, shard, cfg.Service.HTTPAddr)
			ctx := evalCtx(fc.dir)
			ctx.Functions = fp.functions(ctx.Functions)
			p, c, d := l.pipeline(name, b, ctx, cfg.Service.DataDir, shard, cfg.Service.HTTPAddr)
			diags = append(diags, d...)
			claims = append(claims, c...)
			if p != nil {
				p.Fingerprint = fp.sum()
				cfg.Pipelines = append(cfg.Pipelines, p)
			}
		}
	}
	return len(seen), append(diags, checkBufferDirs(claims)...)
}

func fileStart(files []*hcl.File) *hcl.Range {
	if len(files) == 0 {
		return nil
	}
	r := files[0].Body.MissingItemRange()
	return &r
}

func duplicate(what, name string, at, first hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s %q", what, name),
		Detail:  fmt.Sprintf("A %s named %q is already defined at %s. Names must be unique.", what, name, first.String()),
		Subject: at.Ptr(),
	}
}

func (l *Loader) variables(fcs []fileContent) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vars := map[string]cty.Value{}
	at := map[string]hcl.Range{}
	fnCtx := &hcl.EvalContext{}
	for _, fc := range fcs {
		for _, b := range fc.content.Blocks.OfType("variable") {
			name := b.Labels[0]
			if first, dup := at[name]; dup {
				diags = append(diags, duplicate("variable", name, b.DefRange, first))
				continue
			}
			at[name] = b.DefRange
			c, d := b.Body.Content(variableSchema)
			diags = append(diags, d...)
			val := cty.NilVal
			if a, ok := c.Attributes["default"]; ok {
				fnCtx.Functions = l.functions(fc.dir)
				v, d := a.Expr.Value(fnCtx)
				diags = append(diags, d...)
				val = v
			}
			given, ok := l.opts.Vars[name]
			if !ok {
				given, ok = l.opts.LookupEnv("FLOWD_VAR_" + name)
			}
			if ok {
				gv := cty.StringVal(given)
				if val != cty.NilVal && !val.IsNull() && val.Type().IsPrimitiveType() {
					cv, err := convert.Convert(gv, val.Type())
					if err != nil {
						diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable " + name,
							Detail: fmt.Sprintf("%q: %s", given, err), Subject: b.DefRange.Ptr()})
						continue
					}
					gv = cv
				}
				val = gv
			}
			if val == cty.NilVal {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for variable " + name,
					Detail:  fmt.Sprintf("Give it a default, pass --var %s=VALUE, or set FLOWD_VAR_%s.", name, name),
					Subject: b.DefRange.Ptr()})
				continue
			}
			vars[name] = val
		}
	}
	for name := range l.opts.Vars {
		if _, ok := at[name]; !ok {
			detail := "No variable block declares it."
			if s := Suggest(name, slices.Collect(maps.Keys(at))); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown variable " + name + " given with --var", Detail: detail})
		}
	}
	return vars, diags
}

type ref struct {
	kind engine.ComponentKind
	name string
	rng  hcl.Range
}

func (r ref) id() string { return engine.ID(r.kind, r.name) }

type component struct {
	kind    engine.ComponentKind
	typ     string
	name    string
	block   *hcl.Block
	spec    *engine.Spec
	content *hcl.BodyContent
	cfg     reflect.Value
	inputs  []ref
	buffer  engine.BufferConfig
	// bufferAt is where the buffer's directory is set: its dir attribute,
	// or the buffer block for the default one.
	bufferAt hcl.Range
	ok       bool // decoded without errors
}

func (c *component) id() string { return engine.ID(c.kind, c.name) }

var pipelineSchema = func() *hcl.BodySchema {
	s := Schema(reflect.TypeFor[Pipeline]())
	s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: "dead_letter"})
	for _, k := range []string{"source", "transform", "sink"} {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: k, LabelNames: []string{"type", "name"}})
	}
	return s
}()

// pipeline decodes and builds one pipeline block; claims are its sinks'
// disk buffer directories, checked across pipelines by the caller.
func (l *Loader) pipeline(name string, block *hcl.Block, ctx *hcl.EvalContext, dataDir string, shard engine.Shard, adminAddr string) (_ *engine.PipelineConfig, claims []bufferClaim, _ hcl.Diagnostics) {
	content, diags := block.Body.Content(pipelineSchema)
	var attrs Pipeline
	if err := ApplyDefaults(reflect.ValueOf(&attrs).Elem()); err != nil {
		panic(err)
	}
	diags = append(diags, DecodeContent(content, reflect.ValueOf(&attrs).Elem(), ctx)...)
	pc := &engine.PipelineConfig{Name: name, LatencySLO: attrs.LatencySLO, StallTimeout: attrs.StallTimeout, QueueSize: attrs.QueueSize}
	if a, ok := content.Attributes["queue_size"]; ok && (attrs.QueueSize < 1 || attrs.QueueSize > maxQueueSize) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid queue_size",
			Detail:  fmt.Sprintf("queue_size = %d: must be between 1 and %d batches.", attrs.QueueSize, maxQueueSize),
			Subject: a.Expr.Range().Ptr(), Context: a.Range.Ptr()})
	}

	pcs, d := l.decodeComponents(content.Blocks, ctx)
	diags = append(diags, d...)

	// References: inputs and the dead-letter sink.
	diags = append(diags, pcs.checkInputs()...)
	if a, ok := content.Attributes["dead_letter"]; ok {
		pc.DeadLetter, d = pcs.deadLetter(a)
		diags = append(diags, d...)
	}
	diags = append(diags, pcs.checkSinkInputs(pc.DeadLetter)...)
	diags = append(diags, cycles(pcs.list, pcs.byID)...)
	diags = append(diags, pcs.checkUnused()...)
	if len(pcs.names[engine.KindSource]) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Pipeline without a source",
			Detail: fmt.Sprintf("Pipeline %q needs at least one source block.", name), Subject: block.DefRange.Ptr()})
	}

	// Build components only once the configuration reads cleanly, so a
	// constructor never sees half-decoded input.
	for _, c := range pcs.list {
		if !c.ok {
			continue
		}
		nc, d := l.buildNode(name, c, dataDir, shard, adminAddr)
		diags = append(diags, d...)
		if nc != nil {
			pc.Nodes = append(pc.Nodes, nc)
			if nc.Buffer.Type == "disk" {
				claims = append(claims, bufferClaim{pipeline: name, sink: c.name, dir: nc.Buffer.Dir, at: c.bufferAt})
			}
		}
	}
	if diags.HasErrors() {
		return nil, claims, diags
	}
	return pc, claims, diags
}

// pipelineComponents are a pipeline's component blocks, decoded in
// declaration order, with their ids and their names by kind for
// references and suggestions.
type pipelineComponents struct {
	list  []*component
	byID  map[string]*component
	names map[engine.ComponentKind][]string
}

// decodeComponents decodes a pipeline's component blocks; a duplicate is
// reported and left out.
func (l *Loader) decodeComponents(blocks hcl.Blocks, ctx *hcl.EvalContext) (*pipelineComponents, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	pcs := &pipelineComponents{byID: map[string]*component{}, names: map[engine.ComponentKind][]string{}}
	for _, b := range blocks {
		kind := engine.ComponentKind(b.Type)
		c := &component{kind: kind, typ: b.Labels[0], name: b.Labels[1], block: b}
		if first, dup := pcs.byID[c.id()]; dup {
			diags = append(diags, duplicate(string(kind), c.name, b.DefRange, first.block.DefRange))
			continue
		}
		pcs.byID[c.id()] = c
		pcs.names[kind] = append(pcs.names[kind], c.name)
		pcs.list = append(pcs.list, c)
		diags = append(diags, l.decodeComponent(c, ctx)...)
	}
	return pcs, diags
}

// checkInputs reports inputs that are not a source or transform of the
// pipeline, suggesting the nearest name.
func (pcs *pipelineComponents) checkInputs() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, c := range pcs.list {
		for _, r := range c.inputs {
			if r.kind != engine.KindSource && r.kind != engine.KindTransform {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid input",
					Detail: "Inputs are references like source.NAME or transform.NAME.", Subject: r.rng.Ptr()})
				continue
			}
			if _, ok := pcs.byID[r.id()]; !ok {
				detail := fmt.Sprintf("This pipeline has no %s named %q.", r.kind, r.name)
				if s := Suggest(r.name, pcs.names[r.kind]); s != "" {
					detail += fmt.Sprintf(" Did you mean %s.%s?", r.kind, s)
				}
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared " + string(r.kind),
					Detail: detail, Subject: r.rng.Ptr()})
			}
		}
	}
	return diags
}

// deadLetter resolves the dead_letter attribute to the name of a sink of
// the pipeline ("" when it names none).
func (pcs *pipelineComponents) deadLetter(a *hcl.Attribute) (string, hcl.Diagnostics) {
	var name string
	refs, diags := parseRefs(a.Expr, true)
	for _, r := range refs {
		if r.kind != engine.KindSink {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid dead_letter",
				Detail: "dead_letter names a sink: sink.NAME.", Subject: r.rng.Ptr()})
		} else if _, ok := pcs.byID[r.id()]; !ok {
			detail := fmt.Sprintf("This pipeline has no sink named %q.", r.name)
			if s := Suggest(r.name, pcs.names[engine.KindSink]); s != "" {
				detail += fmt.Sprintf(" Did you mean sink.%s?", s)
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared sink", Detail: detail, Subject: r.rng.Ptr()})
		} else {
			name = r.name
		}
	}
	return name, diags
}

// checkSinkInputs requires inputs of every sink but the dead-letter one.
func (pcs *pipelineComponents) checkSinkInputs(deadLetter string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, c := range pcs.list {
		if c.kind == engine.KindSink && c.content != nil && c.content.Attributes["inputs"] == nil && c.name != deadLetter {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing required argument",
				Detail:  fmt.Sprintf("The argument \"inputs\" is required: sink %q reads from nothing and is not the pipeline's dead_letter sink.", c.name),
				Subject: c.block.Body.MissingItemRange().Ptr()})
		}
	}
	return diags
}

// checkUnused warns of consumers missing: a source or transform nothing
// reads from is almost always a mistake.
func (pcs *pipelineComponents) checkUnused() hcl.Diagnostics {
	var diags hcl.Diagnostics
	used := map[string]bool{}
	for _, c := range pcs.list {
		for _, r := range c.inputs {
			used[r.id()] = true
		}
	}
	for _, c := range pcs.list {
		if c.kind != engine.KindSink && !used[c.id()] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Unused " + string(c.kind),
				Detail: fmt.Sprintf("Nothing takes %s as an input; its points are discarded.", c.id()), Subject: c.block.DefRange.Ptr()})
		}
	}
	return diags
}

// buildNode constructs a decoded component with its environment (logger and
// metrics labelled with pipeline and component). A constructor's errors
// become diagnostics and a nil node.
func (l *Loader) buildNode(pipeline string, c *component, dataDir string, shard engine.Shard, adminAddr string) (*engine.NodeConfig, hcl.Diagnostics) {
	env := &engine.Env{
		Pipeline: pipeline, Kind: c.kind, Type: c.typ, Name: c.name, DataDir: dataDir, Shard: shard, AdminAddr: adminAddr,
		Codecs: l.opts.Registry.Codecs,
		Logger: l.opts.Logger.With("pipeline", pipeline, "component", c.id()),
	}
	if l.opts.Metrics != nil {
		env.Metrics = prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": pipeline, "component": c.id()}, l.opts.Metrics)
	}
	obj, err := build(c, env)
	if err != nil {
		var diags hcl.Diagnostics
		for _, e := range engine.SplitErrors(err) {
			diags = append(diags, buildDiag(c, e))
		}
		return nil, diags
	}
	nc := &engine.NodeConfig{Kind: c.kind, Type: c.typ, Name: c.name, Component: obj, Env: env, Buffer: c.buffer}
	for _, r := range c.inputs {
		nc.Inputs = append(nc.Inputs, r.id())
	}
	if nc.Buffer.Type == "disk" && nc.Buffer.Dir == "" {
		nc.Buffer.Dir = filepath.Join(dataDir, "buffers", pipeline, c.name)
	}
	return nc, nil
}

func (l *Loader) decodeComponent(c *component, ctx *hcl.EvalContext) hcl.Diagnostics {
	spec, ok := l.opts.Registry.Lookup(c.kind, c.typ)
	if !ok {
		types := l.opts.Registry.Types(c.kind)
		detail := fmt.Sprintf("There is no %s type %q. Known types: %s.", c.kind, c.typ, strings.Join(types, ", "))
		if s := Suggest(c.typ, types); s != "" {
			detail = fmt.Sprintf("There is no %s type %q. Did you mean %q?", c.kind, c.typ, s)
		}
		// Its inputs still count as read, so the misspelt type is the one
		// diagnostic, not also an "unused" warning for what feeds it.
		if content, _, d := c.block.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "inputs"}}}); !d.HasErrors() {
			if a, ok := content.Attributes["inputs"]; ok {
				c.inputs, _ = parseRefs(a.Expr, false)
			}
		}
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown " + string(c.kind) + " type",
			Detail: detail, Subject: c.block.LabelRanges[0].Ptr()}}
	}
	c.spec = spec
	schema := Schema(spec.ConfigType())
	if c.kind != engine.KindSource {
		// Required, except for a sink that only takes dead letters: checked
		// once dead_letter is resolved.
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: "inputs", Required: c.kind == engine.KindTransform})
	}
	if c.kind == engine.KindSink {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: "buffer"})
	}
	content, diags := c.block.Body.Content(schema)
	c.content = content
	c.cfg = reflect.New(spec.ConfigType())
	if err := ApplyDefaults(c.cfg.Elem()); err != nil {
		panic(err)
	}
	diags = append(diags, DecodeContent(content, c.cfg.Elem(), ctx)...)
	if a, ok := content.Attributes["inputs"]; ok {
		refs, d := parseRefs(a.Expr, false)
		diags = append(diags, d...)
		c.inputs = refs
		if len(refs) == 0 && !d.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No inputs",
				Detail: "inputs lists at least one source.NAME or transform.NAME.", Subject: a.Expr.Range().Ptr()})
		}
	}
	// The buffer block's range errors do not keep the sink from being built.
	var bufferDiags hcl.Diagnostics
	if c.kind == engine.KindSink {
		bv := reflect.ValueOf(&c.buffer).Elem()
		if err := ApplyDefaults(bv); err != nil {
			panic(err)
		}
		bufs := content.Blocks.OfType("buffer")
		for i, b := range bufs {
			if i > 0 {
				diags = append(diags, duplicate("buffer", "buffer", b.DefRange, bufs[0].DefRange))
				break
			}
			bc, d := b.Body.Content(Schema(bv.Type()))
			diags = append(diags, d...)
			c.bufferAt = b.DefRange
			if a, ok := bc.Attributes["dir"]; ok {
				c.bufferAt = a.Expr.Range()
			}
			d = DecodeContent(bc, bv, ctx)
			diags = append(diags, d...)
			if !d.HasErrors() {
				bufferDiags = checkBuffer(&c.buffer, bc)
			}
		}
	}
	c.ok = !diags.HasErrors()
	return append(diags, bufferDiags...)
}

// maxQueueSize bounds a pipeline's queue_size (batches per component input,
// allocated up front).
const maxQueueSize = 1 << 16

// maxBufferPoints bounds a memory buffer's max_points: far above any real
// backlog, low enough that the bound itself cannot exhaust memory unnoticed.
const maxBufferPoints = 100_000_000

// maxBufferInFlight bounds a buffer's max_in_flight (writes a pipelining
// sink keeps outstanding; a handful is what pays off).
const maxBufferInFlight = 1000

// checkBuffer reports every out-of-range value of a buffer block. These do
// not stop the sink itself from being built, so its own problems are
// reported too.
func checkBuffer(b *engine.BufferConfig, bc *hcl.BodyContent) hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(attr, detail string) {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid buffer " + attr, Detail: detail}
		if a, ok := bc.Attributes[attr]; ok {
			d.Subject, d.Context = a.Expr.Range().Ptr(), a.Range.Ptr()
		}
		diags = append(diags, d)
	}
	if b.MaxPoints < 0 || b.MaxPoints > maxBufferPoints {
		bad("max_points", fmt.Sprintf("max_points = %d: must be between 0 (no point bound) and %d.", b.MaxPoints, maxBufferPoints))
	}
	if b.MaxSize < 0 {
		bad("max_size", fmt.Sprintf("max_size = %d: must not be negative.", b.MaxSize))
	}
	// Each write in flight has a slot and a result waiting, made up front.
	if b.MaxInFlight < 0 || b.MaxInFlight > maxBufferInFlight {
		bad("max_in_flight", fmt.Sprintf("max_in_flight = %d: must be between 0 (the sink's default) and %d.", b.MaxInFlight, maxBufferInFlight))
	}
	return diags
}

// parseRefs reads a reference (single) or a list of references without
// evaluating them: source.NAME, transform.NAME, sink.NAME.
func parseRefs(expr hcl.Expression, single bool) ([]ref, hcl.Diagnostics) {
	exprs := []hcl.Expression{expr}
	if !single {
		list, diags := hcl.ExprList(expr)
		if diags.HasErrors() {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid inputs",
				Detail: "inputs is a list of references, like [source.line1, transform.scale].", Subject: expr.Range().Ptr()}}
		}
		exprs = list
	}
	var out []ref
	var diags hcl.Diagnostics
	for _, e := range exprs {
		t, d := hcl.AbsTraversalForExpr(e)
		if d.HasErrors() || len(t) != 2 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid reference",
				Detail: "A reference is written kind.NAME, like source.line1 or transform.scale (no quotes).", Subject: e.Range().Ptr()})
			continue
		}
		attr, ok := t[1].(hcl.TraverseAttr)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid reference",
				Detail: "A reference is written kind.NAME.", Subject: e.Range().Ptr()})
			continue
		}
		out = append(out, ref{kind: engine.ComponentKind(t.RootName()), name: attr.Name, rng: e.Range()})
	}
	return out, diags
}

// cycles reports every transform that is part of a cycle.
func cycles(comps []*component, byID map[string]*component) hcl.Diagnostics {
	var diags hcl.Diagnostics
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var visit func(c *component)
	visit = func(c *component) {
		color[c.id()] = grey
		stack = append(stack, c.id())
		for _, r := range c.inputs {
			next, ok := byID[r.id()]
			if !ok {
				continue
			}
			switch color[next.id()] {
			case grey:
				i := slices.Index(stack, next.id())
				loop := append(slices.Clone(stack[i:]), next.id())
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cycle in pipeline",
					Detail: "These components feed each other: " + strings.Join(loop, " → ") + ".", Subject: r.rng.Ptr()})
			case white:
				visit(next)
			}
		}
		stack = stack[:len(stack)-1]
		color[c.id()] = black
	}
	for _, c := range comps {
		if color[c.id()] == white {
			visit(c)
		}
	}
	return diags
}

// build runs a component's constructor. A panic in it becomes an error, so
// that no configuration ends in a Go stack trace.
func build(c *component, env *engine.Env) (obj any, err error) {
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("cannot be built with this configuration: %v", r)
		}
	}()
	return c.spec.Build(c.cfg.Interface(), env)
}

// buildDiag turns a constructor error into a diagnostic on the attribute it
// blames, down to the column inside an expression where it can.
func buildDiag(c *component, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s %q", c.kind, c.name),
		Detail: err.Error(), Subject: c.block.DefRange.Ptr()}
	var fe *engine.FieldError
	if !errors.As(err, &fe) {
		if r := configRange(err); r != nil {
			d.Subject = r
		}
		return d
	}
	d.Detail = fe.Field + ": " + fe.Err.Error()
	var uc *engine.UnknownCodecError
	if errors.As(fe.Err, &uc) {
		if sug := Suggest(uc.Name, uc.Known); sug != "" {
			d.Detail += fmt.Sprintf(". Did you mean %q?", sug)
		}
	}
	if a, ok := c.content.Attributes[strings.SplitN(fe.Field, ".", 2)[0]]; ok {
		d.Subject, d.Context = a.Expr.Range().Ptr(), a.Range.Ptr()
	}
	if fe.Expr != nil {
		r := hclRange(fe.Expr.Range)
		if fe.Offset >= 0 && r.Start.Line == r.End.Line && fe.Offset < len(fe.Expr.Src) {
			r.Start.Column += fe.Offset
			r.Start.Byte += fe.Offset
			r.End = r.Start
			r.End.Column++
			r.End.Byte++
		}
		d.Subject = &r
	}
	if fe.Range != nil {
		r := hclRange(*fe.Range)
		d.Subject, d.Context = &r, nil
	} else if r := configRange(fe.Err); r != nil {
		d.Subject, d.Context = r, nil
	}
	return d
}

// configRange is where an error in err's chain says it was written (a tls
// block's file that cannot be read: tlsconf.Error), whichever component
// returned it and however it was wrapped; nil when none says.
func configRange(err error) *hcl.Range {
	var at interface{ ConfigRange() *engine.Range }
	if !errors.As(err, &at) || at.ConfigRange() == nil {
		return nil
	}
	r := hclRange(*at.ConfigRange())
	return &r
}
