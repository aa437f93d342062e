package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fingerprints loads src (with env and vars) and returns each pipeline's
// fingerprint by name.
func fingerprints(t *testing.T, src string, env, vars map[string]string) map[string]string {
	t.Helper()
	cfg, diags := loader(env, vars).LoadSource("p.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	out := map[string]string{}
	for _, p := range cfg.Pipelines {
		if p.Fingerprint == "" {
			t.Fatalf("pipeline %s has no fingerprint", p.Name)
		}
		out[p.Name] = p.Fingerprint
	}
	return out
}

const twoPipelines = `variable "prefix" {
  default = "a"
}
variable "other" {
  default = "x"
}

pipeline "one" {
  source "sim" "s" {
    asset_prefix = var.prefix
  }
  sink "file" "out" {
    inputs = [source.s]
    path   = env("OUT_ONE", "one.jsonl")
  }
}

pipeline "two" {
  source "sim" "s" {
    interval = "1s"
  }
  sink "file" "out" {
    inputs = [source.s]
    path   = file("path.txt")
  }
}
`

// A pipeline's fingerprint changes with what it is built from — its text,
// the variables it refers to, what env() and file() return — and with
// nothing else, so a reload restarts only the pipelines that changed.
func TestFingerprintChangesOnlyWithWhatThePipelineReads(t *testing.T) {
	dir := t.TempDir()
	pathFile := filepath.Join(dir, "path.txt")
	if err := os.WriteFile(pathFile, []byte("two.jsonl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := strings.Replace(twoPipelines, `file("path.txt")`, `file("`+pathFile+`")`, 1)
	base := fingerprints(t, src, nil, nil)
	if again := fingerprints(t, src, nil, nil); again["one"] != base["one"] || again["two"] != base["two"] {
		t.Fatal("the same configuration loaded twice has other fingerprints")
	}
	if base["one"] == base["two"] {
		t.Fatal("two different pipelines have the same fingerprint")
	}
	for _, c := range []struct {
		what      string
		src       string
		env, vars map[string]string
		one, two  bool // changed
	}{
		{what: "an attribute of pipeline two", src: strings.Replace(src, `"1s"`, `"2s"`, 1), two: true},
		{what: "a comment outside the pipelines", src: "# note\n" + src},
		{what: "a variable pipeline one reads", src: src, vars: map[string]string{"prefix": "b"}, one: true},
		{what: "a variable no pipeline reads", src: src, vars: map[string]string{"other": "y"}},
		{what: "an environment variable pipeline one reads", src: src, env: map[string]string{"OUT_ONE": "elsewhere.jsonl"}, one: true},
		{what: "pipeline one moved below pipeline two", src: strings.Replace(src, "pipeline \"one\"", "pipeline \"zero\" {\n  source \"sim\" \"s\" {}\n  sink \"file\" \"o\" {\n    inputs = [source.s]\n    path = \"z\"\n  }\n}\n\npipeline \"one\"", 1)},
	} {
		got := fingerprints(t, c.src, c.env, c.vars)
		if changed := got["one"] != base["one"]; changed != c.one {
			t.Errorf("%s: pipeline one changed %v, want %v", c.what, changed, c.one)
		}
		if changed := got["two"] != base["two"]; changed != c.two {
			t.Errorf("%s: pipeline two changed %v, want %v", c.what, changed, c.two)
		}
	}
	// A file read with file() changing restarts the pipeline that read it.
	if err := os.WriteFile(pathFile, []byte("other.jsonl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := fingerprints(t, src, nil, nil)
	if got["two"] == base["two"] || got["one"] != base["one"] {
		t.Error("changing the file read with file() by pipeline two: want only two changed")
	}
}
