package config_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	filesink "github.com/flowd/flowd/sinks/file"
	"github.com/hashicorp/hcl/v2"
)

// exprConf exercises expressions, maps of expressions and nested blocks.
type exprConf struct {
	Where engine.Expr            `hcl:"where"`
	Set   map[string]engine.Expr `hcl:"set"`
	Rules []struct {
		Name  string  `hcl:"name,label"`
		Match string  `hcl:"match,required"`
		Limit float64 `hcl:"limit" default:"1.5"`
	} `hcl:"rule,block"`
	Size engine.Size `hcl:"size" default:"1KiB"`
}

type nopTransform struct{ cfg *exprConf }

func (nopTransform) Process(_ context.Context, in []engine.Point) []engine.Point { return in }

var lastExprConf *exprConf

var exprSpec = engine.TransformSpec(engine.Info{Type: "check", Summary: "test"}, func(c *exprConf, env *engine.Env) (engine.Transform, error) {
	lastExprConf = c
	if strings.Contains(c.Where.Src, "PANIC") {
		var m map[string]int
		m["constructor bug"]++ // a nil-map write: a panic, as a constructor bug would
	}
	if i := strings.Index(c.Where.Src, "BAD"); i >= 0 {
		return nil, engine.ExprError("where", &c.Where, i, errors.New("unknown name BAD"))
	}
	return nopTransform{c}, nil
})

func loader(env map[string]string, vars map[string]string) *config.Loader {
	return config.NewLoader(config.Options{
		Registry: engine.NewRegistry(sim.Spec, filesink.Spec, exprSpec).WithCodecs(codecs.All()),
		Vars:     vars,
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	})
}

func load(t *testing.T, src string) (*config.Config, hcl.Diagnostics) {
	t.Helper()
	return loader(nil, nil).LoadSource("p.hcl", []byte(src))
}

func errorsAt(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			out = append(out, fmt.Sprintf("%d:%d %s", d.Subject.Start.Line, d.Subject.Start.Column, d.Summary))
		}
	}
	return out
}

func TestEveryProblemIsReportedWithItsPosition(t *testing.T) {
	src := `pipeline "p" {
  source "sim" "a" {
    colour   = "red"
    interval = "soon"
  }
  source "sim" "a" {}
  sink "file" "out" {
    inputs = [source.missing]
    path   = "x.jsonl"
  }
}
`
	_, diags := load(t, src)
	got := errorsAt(diags)
	want := []string{
		"3:5 Unsupported argument",
		`4:16 Invalid value for "interval"`,
		`6:3 Duplicate source "a"`,
		"8:15 Reference to undeclared source",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range diags {
		if d.Summary == `Duplicate source "a"` && !strings.Contains(d.Detail, "p.hcl:2,3") {
			t.Fatalf("duplicate does not cite the first definition: %s", d.Detail)
		}
	}
}

func TestValidPipelineDecodesDefaultsAndValues(t *testing.T) {
	cfg, diags := load(t, `
pipeline "p" {
  latency_slo = "3s"
  source "sim" "a" { assets = 4 }
  transform "check" "c" {
    inputs = [source.a]
    where  = "value > 1"
    set    = { value = "value * 2", tag = "tag + '_x'" }
    rule "r1" { match = "line1/*" }
    rule "r2" {
      match = "*"
      limit = 3
    }
    size = "2MiB"
  }
  sink "file" "out" {
    inputs = [transform.c, source.a]
    path   = "x.jsonl"
    buffer {
      max_points = 77
      when_full  = "drop_oldest"
    }
  }
}`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p := cfg.Pipelines[0]
	if p.LatencySLO != 3*time.Second || p.StallTimeout != 5*time.Minute {
		t.Fatalf("pipeline attrs: %+v", p)
	}
	if cfg.Service.HTTPAddr != "127.0.0.1:9180" {
		t.Fatalf("service default http_addr = %q", cfg.Service.HTTPAddr)
	}
	c := lastExprConf
	if c.Where.Src != "value > 1" || c.Set["tag"].Src != "tag + '_x'" || len(c.Rules) != 2 ||
		c.Rules[0].Name != "r1" || c.Rules[0].Limit != 1.5 || c.Rules[1].Limit != 3 || c.Size != 2<<20 {
		t.Fatalf("decoded config: %+v", c)
	}
	// The expression range starts at the string's first character, not the quote.
	if c.Where.Range.Start.Line != 7 || c.Where.Range.Start.Column != 15 {
		t.Fatalf("where starts at %d:%d", c.Where.Range.Start.Line, c.Where.Range.Start.Column)
	}
	sink := p.Nodes[2]
	if sink.Buffer.MaxPoints != 77 || sink.Buffer.WhenFull != "drop_oldest" || sink.Buffer.Type != "memory" {
		t.Fatalf("buffer: %+v", sink.Buffer)
	}
	if strings.Join(sink.Inputs, ",") != "transform.c,source.a" {
		t.Fatalf("inputs: %v", sink.Inputs)
	}
}

func TestExpressionErrorPointsInsideTheString(t *testing.T) {
	_, diags := load(t, `pipeline "p" {
  source "sim" "a" {}
  transform "check" "c" {
    inputs = [source.a]
    where  = "value > BAD"
  }
  sink "file" "o" {
    inputs = [transform.c]
    path   = "x"
  }
}`)
	got := errorsAt(diags)
	// The string starts at column 15; BAD is 8 bytes in.
	if len(got) != 1 || got[0] != `5:23 Invalid transform "c"` {
		t.Fatalf("got %v", got)
	}
}

func TestCycleIsRejected(t *testing.T) {
	_, diags := load(t, `pipeline "p" {
  source "sim" "a" {}
  transform "check" "x" { inputs = [source.a, transform.y] }
  transform "check" "y" { inputs = [transform.x] }
  sink "file" "o" {
    inputs = [transform.y]
    path   = "x"
  }
}`)
	found := false
	for _, d := range diags {
		if d.Summary == "Cycle in pipeline" && strings.Contains(d.Detail, "transform.x → transform.y → transform.x") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no cycle diagnostic: %v", diags)
	}
}

func TestVariablesEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("s3cret\n"), 0o600)
	src := `
variable "assets" { default = 2 }
variable "dir" { default = "out" }
variable "unit" { default = "C" }
pipeline "p" {
  source "sim" "a" { assets = var.assets }
  transform "check" "c" {
    inputs = [source.a]
    where  = "${var.assets}/${var.dir}/${var.unit}"
    set = {
      secret = file("secret.txt")
      host   = env("HOST_NAME", "none")
      token  = env("TOKEN")
    }
  }
  sink "file" "o" {
    inputs = [transform.c]
    path   = "x.jsonl"
  }
}`
	path := filepath.Join(dir, "p.hcl")
	os.WriteFile(path, []byte(src), 0o644)
	l := loader(map[string]string{"FLOWD_VAR_assets": "5", "FLOWD_VAR_dir": "env-dir", "TOKEN": "t0k"}, map[string]string{"assets": "7"})
	if _, diags := l.LoadFiles([]string{dir}); diags.HasErrors() {
		t.Fatal(diags)
	}
	// --var wins over FLOWD_VAR_, which wins over the default.
	c := lastExprConf
	if c.Where.Src != "7/env-dir/C" {
		t.Fatalf("variables resolved to %q", c.Where.Src)
	}
	// file() is relative to the config file and drops the trailing newline;
	// env() falls back to its default.
	if c.Set["secret"].Src != "s3cret" || c.Set["host"].Src != "none" || c.Set["token"].Src != "t0k" {
		t.Fatalf("functions: %+v", c.Set)
	}
	_, diags := loader(nil, map[string]string{"asets": "1"}).LoadFiles([]string{path})
	all := ""
	for _, d := range diags {
		all += d.Summary + ": " + d.Detail + "\n"
	}
	if !strings.Contains(all, `Did you mean "assets"`) {
		t.Fatalf("unknown --var not reported with a suggestion: %v", diags)
	}
	if !strings.Contains(all, "TOKEN is not set") {
		t.Fatalf("missing env var not reported: %v", diags)
	}
}

func TestDuplicatePipelineAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	body := `pipeline "p" {
  source "sim" "a" {}
  sink "file" "o" {
    inputs = [source.a]
    path   = "x"
  }
}
`
	os.WriteFile(filepath.Join(dir, "a.hcl"), []byte(body), 0o644)
	os.WriteFile(filepath.Join(dir, "b.hcl"), []byte(body), 0o644)
	_, diags := loader(nil, nil).LoadFiles([]string{dir})
	if got := errorsAt(diags); len(got) != 1 || got[0] != `1:1 Duplicate pipeline "p"` {
		t.Fatalf("got %v", got)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "1KiB": 1024, "1.5GB": 1.5e9, "2 MiB": 2 << 20, "10MB": 10e6} {
		got, err := config.ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1XB", "-1"} {
		if _, err := config.ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// FuzzLoad: arbitrary bytes never panic the loader; what does not load
// always comes with an error diagnostic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(`pipeline "p" { source "sim" "a" {} sink "file" "o" { inputs = [source.a] path = "x" } }`))
	f.Add([]byte(`variable "v" { default = 1 } pipeline "p" { latency_slo = var.v }`))
	f.Add([]byte(`pipeline "p" { transform "check" "c" { inputs = [transform.c] where = "" set = { a = "b" } } }`))
	f.Add([]byte("service { http_addr = 1 }\npipeline \"x\" {\n sink \"file\" \"o\" { buffer { max_size = \"1Q\" } } }"))
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := loader(nil, nil).LoadSource("fuzz.hcl", src)
		if cfg == nil && !diags.HasErrors() {
			t.Fatalf("no config and no error for %q", src)
		}
		if cfg != nil && diags.HasErrors() {
			t.Fatalf("config returned despite errors for %q", src)
		}
	})
}

func TestDeadLetterSinkNeedsNoInputs(t *testing.T) {
	cfg, diags := load(t, `pipeline "p" {
  dead_letter = sink.dlq
  source "sim" "a" {}
  sink "file" "out" {
    inputs = [source.a]
    path   = "x"
  }
  sink "file" "dlq" {
    path = "dead.jsonl"
  }
}`)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Pipelines[0].DeadLetter != "dlq" {
		t.Fatalf("dead letter = %q", cfg.Pipelines[0].DeadLetter)
	}
	_, diags = load(t, `pipeline "p" {
  source "sim" "a" {}
  sink "file" "out" {
    inputs = [source.a]
    path   = "x"
  }
  sink "file" "orphan" {
    path = "y"
  }
}`)
	if got := errorsAt(diags); len(got) != 1 || !strings.HasSuffix(got[0], "Missing required argument") {
		t.Fatalf("a sink with no inputs that is not the dead-letter sink: %v", got)
	}
}

// A constructor that panics is a diagnostic on its block, never a crash.
func TestConstructorPanicIsADiagnostic(t *testing.T) {
	_, diags := load(t, `pipeline "p" {
  source "sim" "s" {}
  transform "check" "c" {
    inputs = [source.s]
    where  = "PANIC"
  }
  sink "file" "f" {
    inputs = [transform.c]
    path   = "x.jsonl"
  }
}
`)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "cannot be built with this configuration") {
		t.Fatalf("diagnostics: %v", diags)
	}
	if got := errorsAt(diags); len(got) != 1 || !strings.HasPrefix(got[0], "3:3 ") {
		t.Fatalf("errors at %v, want one on the transform block", got)
	}
}

// A format no codec of the build has is blamed at the attribute, with the
// codecs there are and the nearest name.
func TestUnknownFormatSuggestsCodec(t *testing.T) {
	_, diags := load(t, `pipeline "p" {
  source "sim" "s" {}
  sink "file" "out" {
    inputs = [source.s]
    path   = "out.jsonl"
    format = "jsn_batch"
  }
}`)
	if got := errorsAt(diags); len(got) != 1 || got[0] != `6:14 Invalid sink "out"` {
		t.Fatalf("got %v", got)
	}
	if d := diags[0].Detail; !strings.Contains(d, `unknown format "jsn_batch": one of asset_json, json, json_batch`) || !strings.Contains(d, `Did you mean "json_batch"?`) {
		t.Errorf("detail: %s", d)
	}
}

// Past MaxDiagnosticsPerFile, one note says how many were left out; it is an
// error only when one of those was, so many warnings never fail a valid file.
func TestDiagnosticCapKeepsTheSeverity(t *testing.T) {
	// unused sources (a warning each), then bad ones (an error each)
	many := func(unused, bad int) string {
		var b strings.Builder
		b.WriteString("pipeline \"p\" {\n")
		for i := range unused {
			fmt.Fprintf(&b, "  source \"sim\" \"s%d\" {}\n", i)
		}
		for i := range bad {
			fmt.Fprintf(&b, "  source \"sim\" \"bad%d\" {\n    nosuch = 1\n  }\n", i)
		}
		b.WriteString("  sink \"file\" \"out\" {\n    inputs = [source.s0]\n    path = \"x.jsonl\"\n  }\n}\n")
		return b.String()
	}
	n := config.MaxDiagnosticsPerFile + 5
	cfg, diags := load(t, many(n, 0))
	if diags.HasErrors() || cfg == nil {
		t.Fatalf("%d warnings made the file invalid: %v", n-1, diags)
	}
	if len(diags) != config.MaxDiagnosticsPerFile+1 {
		t.Fatalf("%d diagnostics, want %d and a note", len(diags), config.MaxDiagnosticsPerFile)
	}
	if note := diags[len(diags)-1]; note.Severity != hcl.DiagWarning || !strings.Contains(note.Detail, "4 more") {
		t.Fatalf("note %+v, want a warning about 4 more", note)
	}
	// Errors among those left out: the note is one.
	_, diags = load(t, many(0, n))
	if !diags.HasErrors() || diags[len(diags)-1].Severity != hcl.DiagError {
		t.Fatalf("the errors left out were lost: %v", diags)
	}
}

// Two sinks whose disk buffers resolve to one directory are a configuration
// error, reported at the second, before anything opens: across pipelines,
// spelt differently, or an explicit dir equal to another sink's default.
func TestDiskBufferDirUsedTwice(t *testing.T) {
	dir := t.TempDir()
	sink := func(name, buffer string) string {
		return fmt.Sprintf(`  sink "file" %q {
    inputs = [source.s]
    path   = "%s.jsonl"
    buffer {
      type = "disk"%s
    }
  }
`, name, name, buffer)
	}
	pipeline := func(name string, sinks ...string) string {
		return fmt.Sprintf("pipeline %q {\n  source \"sim\" \"s\" {}\n%s}\n", name, strings.Join(sinks, ""))
	}
	dirAttr := func(d string) string { return fmt.Sprintf("\n      dir  = %q", d) }
	for _, c := range []struct {
		name, src string
		want      []string // line:col summary
		cites     string   // where the detail says the first one is
	}{
		{"distinct dirs, same sink name in two pipelines", pipeline("a", sink("out", ""), sink("two", dirAttr(dir+"/x"))) + pipeline("b", sink("out", "")), nil, ""},
		{"across pipelines, spelt differently", pipeline("a", sink("out", dirAttr(dir+"/buf"))) + pipeline("b", sink("out", dirAttr(dir+"/./x/../buf/"))),
			[]string{"19:14 Disk buffer directory used twice"}, "p.hcl:8,14"},
		{"an explicit dir equal to another sink's default", pipeline("p", sink("one", ""), sink("two", dirAttr("data/buffers/p/one"))),
			[]string{"15:14 Disk buffer directory used twice"}, "p.hcl:6,5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, diags := load(t, c.src)
			if got := errorsAt(diags); strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"), c.src)
			}
			for _, d := range diags {
				if !strings.Contains(d.Detail, c.cites) || !strings.Contains(d.Detail, "cannot share a directory") {
					t.Errorf("detail %q does not cite the first use at %s", d.Detail, c.cites)
				}
			}
		})
	}
}
