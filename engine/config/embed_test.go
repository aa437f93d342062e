package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/connectors/sim"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	filesink "github.com/flowd/flowd/sinks/file"
)

// Conn is a shared group of connection attributes, embedded flat.
type Conn struct {
	Host    string        `hcl:"host,required" doc:"server host"`
	Timeout time.Duration `hcl:"timeout" default:"10s" doc:"dial timeout"`
	Clean   bool          `hcl:"clean" default:"false" doc:"start a clean session"`
	TLS     *struct {
		CAFile string `hcl:"ca_file" doc:"CA file"`
	} `hcl:"tls,block" doc:"TLS settings"`
}

// Auth is a second group, to embed two in one component.
type Auth struct {
	User string `hcl:"user" doc:"user name"`
}

type embedA struct {
	Conn
	Topic string `hcl:"topic" default:"a/b" doc:"topic"`
}

type embedB struct {
	Name string `hcl:"name" doc:"name"`
	Conn `default.clean:"true" default.timeout:"3s" doc.clean:"start clean (the default here)" doc.tls:"TLS to the server"`
	Auth
}

var gotA *embedA
var gotB *embedB

var (
	embedASpec = engine.TransformSpec(engine.Info{Type: "emb_a", Summary: "test"}, func(c *embedA, _ *engine.Env) (engine.Transform, error) {
		gotA = c
		return nopTransform{}, nil
	})
	embedBSpec = engine.TransformSpec(engine.Info{Type: "emb_b", Summary: "test"}, func(c *embedB, _ *engine.Env) (engine.Transform, error) {
		gotB = c
		return nopTransform{}, nil
	})
)

func loadEmbed(t *testing.T, a, b string) []string {
	t.Helper()
	gotA, gotB = nil, nil
	l := config.NewLoader(config.Options{Registry: engine.NewRegistry(sim.Spec, filesink.Spec, embedASpec, embedBSpec).WithCodecs(codecs.All()),
		LookupEnv: func(string) (string, bool) { return "", false }})
	_, diags := l.LoadSource("p.hcl", []byte(`pipeline "p" {
  source "sim" "s" {}
  transform "emb_a" "a" {
    inputs = [source.s]
`+a+`
  }
  transform "emb_b" "b" {
    inputs = [transform.a]
`+b+`
  }
  sink "file" "out" {
    inputs = [transform.b]
    path   = "x.jsonl"
  }
}`))
	for _, d := range diags {
		if strings.Contains(d.Summary, "Unsupported") && !strings.Contains(d.Detail, "host") {
			t.Errorf("detail %q suggests nothing", d.Detail)
		}
	}
	return errorsAt(diags)
}

// TestEmbeddedGroupDefaultsPerComponent checks that an embedded group's
// attributes are written flat, and that each component gets its own
// defaults for them.
func TestEmbeddedGroupDefaultsPerComponent(t *testing.T) {
	if errs := loadEmbed(t, `    host = "a"`, `    host = "b"
    user = "u"
    tls {
      ca_file = "ca.pem"
    }`); len(errs) > 0 {
		t.Fatal(errs)
	}
	if gotA.Host != "a" || gotA.Timeout != 10*time.Second || gotA.Clean || gotA.Topic != "a/b" || gotA.TLS != nil {
		t.Errorf("a: %+v", *gotA)
	}
	if gotB.Host != "b" || gotB.Timeout != 3*time.Second || !gotB.Clean || gotB.User != "u" || gotB.TLS == nil || gotB.TLS.CAFile != "ca.pem" {
		t.Errorf("b: %+v", *gotB)
	}
	// Set explicitly, a value wins over either default.
	if errs := loadEmbed(t, `    host = "a"
    clean = true`, `    host = "b"
    clean = false
    timeout = "1s"`); len(errs) > 0 {
		t.Fatal(errs)
	}
	if !gotA.Clean || gotB.Clean || gotB.Timeout != time.Second {
		t.Errorf("a: %+v, b: %+v", *gotA, *gotB)
	}
}

// TestEmbeddedGroupErrors checks that a required attribute of a group is
// required in each component, and that an unknown or mistyped attribute is
// blamed where it was written.
func TestEmbeddedGroupErrors(t *testing.T) {
	got := loadEmbed(t, `    topic = "x"`, `    hots = "b"
    timeout = "soon"`)
	want := []string{
		`3:25 Missing required argument`, // emb_a: no host (at its block's brace)
		`7:25 Missing required argument`, // emb_b: no host either
		`9:5 Unsupported argument`,       // emb_b: hots, with "Did you mean host?"
		`10:15 Invalid value for "timeout"`,
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// TestEmbeddedGroupDocs checks the reference docs of embedded groups: the
// group's attributes in its place, with the embedding component's defaults
// and docs.
func TestEmbeddedGroupDocs(t *testing.T) {
	var names []string
	for _, f := range config.Fields(reflect.TypeFor[embedB]()) {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "name host timeout clean tls user" {
		t.Errorf("fields of embedB: %s", got)
	}
	a, b := config.Markdown(embedASpec), config.Markdown(embedBSpec)
	for _, want := range []string{
		"| `host` | string | required | server host |",
		"| `clean` | bool | `false` | start a clean session |",
		"| `timeout` | duration | `10s` | dial timeout |",
		"### Block `tls `\n\nTLS settings\n",
		"| `tls.ca_file` | string |  | CA file |",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("emb_a docs lack %q:\n%s", want, a)
		}
	}
	for _, want := range []string{
		"| `host` | string | required | server host |",
		"| `clean` | bool | `true` | start clean (the default here) |",
		"| `timeout` | duration | `3s` | dial timeout |",
		"### Block `tls `\n\nTLS to the server\n",
		"| `user` | string |  | user name |",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("emb_b docs lack %q:\n%s", want, b)
		}
	}
	// The override is the component's own: the group's docs are unchanged.
	if strings.Contains(a, "the default here") {
		t.Error("emb_b's override leaked into emb_a")
	}
}

// TestEmbeddedGroupMistakesPanic checks that tags which cannot be right
// fail as soon as the struct is looked at (every spec's fields are listed
// by the docs and validate tests), not silently.
func TestEmbeddedGroupMistakesPanic(t *testing.T) {
	type typo struct {
		Conn `default.cleen:"true"`
	}
	type twice struct {
		Conn
		Host string `hcl:"host"`
	}
	for _, c := range []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[typo](), "default.cleen names no attribute"},
		{reflect.TypeFor[twice](), `attribute "host" declared twice`},
	} {
		func() {
			defer func() {
				p := recover()
				if p == nil || !strings.Contains(p.(string), c.want) {
					t.Errorf("%s: panic %v, want %q", c.t, p, c.want)
				}
			}()
			config.Fields(c.t)
		}()
	}
}
