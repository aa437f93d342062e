package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComponentDocsInSync fails when docs/components differs from what the
// specs generate: run `make docs` (flowd components --markdown docs/components).
func TestComponentDocsInSync(t *testing.T) {
	want := t.TempDir()
	if err := writeDocs(registry(), want); err != nil {
		t.Fatal(err)
	}
	have := filepath.Join("..", "..", "docs", "components")
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.md"))
	haveFiles, _ := filepath.Glob(filepath.Join(have, "*.md"))
	seen := map[string]bool{}
	for _, w := range wantFiles {
		name := filepath.Base(w)
		seen[name] = true
		gen, _ := os.ReadFile(w)
		cur, err := os.ReadFile(filepath.Join(have, name))
		if err != nil {
			t.Errorf("docs/components/%s is missing: run make docs", name)
			continue
		}
		if !bytes.Equal(gen, cur) {
			t.Errorf("docs/components/%s is stale: run make docs", name)
		}
	}
	for _, h := range haveFiles {
		if !seen[filepath.Base(h)] {
			t.Errorf("docs/components/%s documents no registered component: delete it or run make docs", filepath.Base(h))
		}
	}
	if len(wantFiles) < 2 {
		t.Fatalf("only %d generated files", len(wantFiles))
	}
}

// exampleFixtures are the files an example reads at validation (components
// that load a table or a certificate check it exists before anything starts).
var exampleFixtures = map[string]map[string]string{
	"transform-lookup": {"tags.csv": "asset,tag,unit,site\nline1,temperature,degC,north\n"},
}

// TestComponentExamplesValidate wraps every component's documented example
// in a minimal pipeline and runs `flowd validate` on it, from a directory
// holding the files the example names.
func TestComponentExamplesValidate(t *testing.T) {
	reg := registry()
	specs := reg.All()
	if len(specs) == 0 {
		t.Fatal("empty registry")
	}
	for _, s := range specs {
		t.Run(string(s.Kind)+"-"+s.Type, func(t *testing.T) {
			if strings.TrimSpace(s.Summary) == "" {
				t.Errorf("%s %s has no summary", s.Kind, s.Type)
			}
			src, err := examplePipeline(reg, s)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			t.Chdir(dir)
			for name, content := range exampleFixtures[string(s.Kind)+"-"+s.Type] {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "example.hcl")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := cli([]string{"validate", path}, &stdout, &stderr); code != exitOK {
				t.Fatalf("flowd validate exited %d:\n%s\nfor:\n%s", code, stderr.String(), src)
			}
			if !strings.HasPrefix(stdout.String(), "valid: 1 pipeline(s)") {
				t.Fatalf("unexpected output %q", stdout.String())
			}
			stdout.Reset()
			if code := cli([]string{"fmt", "-check", path}, &stdout, &stderr); code != exitOK {
				t.Errorf("the example is not formatted canonically (flowd fmt):\n%s", src)
			}
		})
	}
}

func TestExamplePipelineDeclaresInputsAndOutput(t *testing.T) {
	reg := registry()
	for _, s := range reg.All() {
		src, err := examplePipeline(reg, s)
		if err != nil {
			t.Fatal(err)
		}
		switch s.Kind {
		case "source", "transform":
			if !strings.Contains(src, `"example_out"`) {
				t.Errorf("%s %s: no sink fed:\n%s", s.Kind, s.Type, src)
			}
		case "sink":
			if strings.Contains(src, `"example_out"`) {
				t.Errorf("%s %s: a sink example needs no extra sink:\n%s", s.Kind, s.Type, src)
			}
		}
	}
	// An example whose input is a transform gets one, fed by a source.
	for _, s := range reg.All() {
		if s.Kind != "sink" {
			continue
		}
		cp := *s
		cp.Example = strings.Replace(s.Example, "source.plant", "transform.scale", 1)
		if cp.Example == s.Example {
			continue
		}
		src, err := examplePipeline(reg, &cp)
		if err != nil {
			// the registry may hold no transform needing no attributes
			if !strings.Contains(err.Error(), "no transform type") {
				t.Fatal(err)
			}
			continue
		}
		if !strings.Contains(src, `"scale"`) || !strings.Contains(src, "source.example_feed") {
			t.Fatalf("transform input not declared:\n%s", src)
		}
		break
	}
}

func TestExamplePipelineRejectsMalformedExamples(t *testing.T) {
	reg := registry()
	s, _ := reg.Lookup("sink", "file")
	for name, ex := range map[string]string{
		"empty":      "",
		"wrong kind": `source "file" "x" {}`,
		"wrong type": `sink "nope" "x" {}`,
		"two blocks": "sink \"file\" \"a\" {}\nsink \"file\" \"b\" {}",
		"bad input":  `sink "file" "x" { inputs = ["source.a"] }`,
		"not hcl":    `sink "file" {`,
	} {
		cp := *s
		cp.Example = ex
		if _, err := examplePipeline(reg, &cp); err == nil {
			t.Errorf("%s: accepted %q", name, ex)
		}
	}
}

// TestValidateSuggestsNames checks the "did you mean" hints of flowd validate.
func TestValidateSuggestsNames(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"attribute": {`pipeline "p" {
  source "sim" "plant" {
    asets = 3
  }
  sink "discard" "d" {
    inputs = [source.plant]
  }
}
`, `"assets"`},
		"reference": {`pipeline "p" {
  source "sim" "plant" {}
  sink "discard" "d" {
    inputs = [source.plnat]
  }
}
`, "source.plant"},
		"type": {`pipeline "p" {
  source "smi" "plant" {}
  sink "discard" "d" {
    inputs = [source.plant]
  }
}
`, `"sim"`},
		"enum": {`pipeline "p" {
  source "sim" "plant" {}
  sink "file" "f" {
    inputs = [source.plant]
    path   = "out.jsonl"
    mode   = "truncat"
  }
}
`, `"truncate"`},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.hcl")
			os.WriteFile(path, []byte(tc.src), 0o644)
			var stdout, stderr bytes.Buffer
			if code := cli([]string{"validate", path}, &stdout, &stderr); code != exitInvalid {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInvalid, stderr.String())
			}
			out := stderr.String()
			if !strings.Contains(strings.ToLower(out), "did you mean") || !strings.Contains(out, tc.want) {
				t.Fatalf("want a suggestion of %s, got:\n%s", tc.want, out)
			}
			if !strings.Contains(out, path+":") {
				t.Fatalf("diagnostic without file:line:col:\n%s", out)
			}
		})
	}
}

// TestShippedPipelinesValidate runs flowd validate and fmt -check on every
// pipeline file under pipelines/.
func TestShippedPipelinesValidate(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "pipelines", "*.hcl"))
	more, _ := filepath.Glob(filepath.Join("..", "..", "pipelines", "*", "*.hcl"))
	files = append(files, more...)
	if len(files) == 0 {
		t.Fatal("no pipelines found")
	}
	setValidateEnv(t)
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := cli([]string{"validate", f}, &stdout, &stderr); code != exitOK {
			t.Errorf("flowd validate %s: exit %d\n%s", f, code, stderr.String())
		}
		stdout.Reset()
		if code := cli([]string{"fmt", "-check", f}, &stdout, &stderr); code != exitOK {
			t.Errorf("flowd fmt -check %s: not formatted", f)
		}
	}
}

func TestComponentsExampleFlagPrintsRunnablePipeline(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := cli([]string{"components", "--example", "sim"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	path := filepath.Join(t.TempDir(), "sim.hcl")
	os.WriteFile(path, stdout.Bytes(), 0o644)
	var vout bytes.Buffer
	if code := cli([]string{"validate", path}, &vout, &stderr); code != exitOK {
		t.Fatalf("printed example does not validate: %s\n%s", stderr.String(), stdout.String())
	}
	stderr.Reset()
	if code := cli([]string{"components", "--example", "nosuch"}, &stdout, &stderr); code != exitInvalid || !strings.Contains(stderr.String(), "no component") {
		t.Fatalf("unknown component: exit %d, %q", code, stderr.String())
	}
}
