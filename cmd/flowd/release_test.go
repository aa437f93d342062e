package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// flowdOut runs the real binary and returns its exit code, stdout and stderr.
func flowdOut(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return flowdIn(t, "", env, args...)
}

// flowdIn is flowdOut in the working directory dir.
func flowdIn(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(harness.Flowd(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// Flags may follow positional arguments, for every command; "--" ends them.
func TestFlagsAfterPositionalArguments(t *testing.T) {
	dir := t.TempDir()
	in := harness.WriteFile(t, dir, "in.jsonl", `{"asset":"a","tag":"t","value":1,"quality":"good","ts":"2026-11-22T10:00:00Z"}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `variable "out" {}

pipeline "p" {
  source "file" "in" {
    path = "`+in+`"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = var.out
  }
}
`)
	// The variable has no default: the flag after the file must be seen.
	if code, stdout, stderr := flowdOut(t, nil, "validate", pipe, "--var", "out="+out); code != 0 || !strings.Contains(stdout, "valid: 1 pipeline(s)") {
		t.Fatalf("validate FILE --var: exit %d\n%s%s", code, stdout, stderr)
	}
	final := filepath.Join(dir, "final.json")
	code, _, stderr := flowdOut(t, nil, "run", pipe, "--http", "off", "--var", "out="+out, "--final-status", final, "--log-format=json")
	if code != 0 {
		t.Fatalf("run FILE --http off …: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(final); err != nil {
		t.Errorf("--final-status after the file was ignored: %v", err)
	}
	if b, _ := os.ReadFile(out); !strings.Contains(string(b), `"tag":"t"`) {
		t.Errorf("output %q lacks the point", b)
	}
	if code, stdout, _ := flowdOut(t, nil, "components", "cov", "--example"); code != 0 || !strings.HasPrefix(stdout, "pipeline ") {
		t.Errorf("components cov --example: exit %d\n%s", code, stdout)
	}
	// After "--", a dash argument is a file name, not a flag.
	if code, _, stderr := flowdOut(t, nil, "validate", "--", "--strict"); code != 1 || !strings.Contains(stderr, "--strict") {
		t.Errorf("validate -- --strict: exit %d, want 1 naming the file\n%s", code, stderr)
	}
	// A bench scenario with its flags after it reaches the scenario (which
	// then asks for its services) instead of printing the usage.
	code, _, stderr = flowdOut(t, []string{"FLOWD_TEST_EVENTHUBS="}, "bench", "aio-single", "--duration", "1s", "--json")
	if strings.Contains(stderr, "Usage: flowd bench") || !strings.Contains(stderr, "needs FLOWD_TEST_EVENTHUBS") {
		t.Errorf("bench aio-single --duration 1s: exit %d\n%s", code, stderr)
	}
}

// The version, commit and date come from the link flags the Makefile sets;
// `flowd --version` and `flowd version` agree.
func TestVersionFromBuildFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "flowd")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3 -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.date=2026-11-30T12:00:00Z", "-o", bin, "./cmd/flowd")
	build.Dir = harness.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var outs []string
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("flowd %s: %v", arg, err)
		}
		outs = append(outs, string(out))
	}
	if outs[0] != outs[1] {
		t.Errorf("--version and version differ:\n%s\n%s", outs[0], outs[1])
	}
	for _, want := range []string{"flowd v1.2.3\n", "commit: 0123456789abcdef0123456789abcdef01234567\n", "built: 2026-11-30T12:00:00Z\n", "go: go1."} {
		if !strings.Contains(outs[0], want) {
			t.Errorf("missing %q in:\n%s", want, outs[0])
		}
	}
}

// --help names every command with an example of it.
func TestHelpListsEveryCommandWithExamples(t *testing.T) {
	code, _, help := flowdOut(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	cmds, examples, _ := strings.Cut(help, "Examples:")
	for name := range commands() {
		if !regexp.MustCompile(`(?m)^  ` + name + `\b`).MatchString(cmds) {
			t.Errorf("command %s not listed:\n%s", name, help)
		}
		if !strings.Contains(examples, "flowd "+name) {
			t.Errorf("no example of %s:\n%s", name, examples)
		}
	}
	if code, _, stderr := flowdOut(t, nil, "help", "validate"); code != 0 || !strings.Contains(stderr, "Usage: flowd validate") || !strings.Contains(stderr, "-strict") {
		t.Errorf("help validate: exit %d\n%s", code, stderr)
	}
}

// The bash completion script, loaded into a real bash, completes commands,
// flags (also of sim subcommands), component and scenario names and
// pipeline files.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	code, script, stderr := flowdOut(t, nil, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d\n%s", code, stderr)
	}
	dir := t.TempDir()
	f := harness.WriteFile(t, dir, "flowd.bash", script)
	harness.WriteFile(t, dir, "plant.hcl", "")
	harness.WriteFile(t, dir, "notes.txt", "")
	complete := func(words ...string) []string {
		t.Helper()
		var line strings.Builder
		line.WriteString("source " + f + "; COMP_WORDS=(flowd")
		for _, w := range words {
			line.WriteString(" '" + w + "'")
		}
		line.WriteString(")")
		if words[len(words)-1] == "" {
			line.WriteString("; COMP_WORDS+=('')")
		}
		line.WriteString("; COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _flowd; printf '%s\\n' \"${COMPREPLY[@]}\"")
		cmd := exec.Command(bash, "--norc", "-c", line.String())
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		sort.Strings(got)
		return got
	}
	cases := []struct {
		words []string
		want  string
	}{
		{[]string{"va"}, "validate"},
		{[]string{"--ver"}, "--version"},
		{[]string{"run", "--ht"}, "--http"},
		{[]string{"run", "pl"}, "plant.hcl"},
		{[]string{"validate", "--st"}, "--strict"},
		{[]string{"components", "op"}, "opcua"},
		{[]string{"bench", "aio-s"}, "aio-single"},
		{[]string{"sim", "p"}, "plc"},
		{[]string{"sim", "plc", "--li"}, "--listen"},
		{[]string{"completion", "fi"}, "fish"},
	}
	for _, c := range cases {
		got := complete(c.words...)
		if strings.Join(got, " ") != c.want {
			t.Errorf("flowd %s<TAB>: %q, want %q", strings.Join(c.words, " "), got, c.want)
		}
	}
	if got := complete("run", ""); strings.Contains(strings.Join(got, " "), "notes.txt") || !strings.Contains(strings.Join(got, " "), "plant.hcl") {
		t.Errorf("flowd run <TAB>: %q, want .hcl files and directories only", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		code, script, _ := flowdOut(t, nil, "completion", sh)
		flag := map[string]string{"zsh": "'--http:", "fish": "-l http -r"}[sh]
		if code != 0 || !strings.Contains(script, flag) || !strings.Contains(script, "opcua") {
			t.Errorf("completion %s: exit %d\n%s", sh, code, script)
			continue
		}
		if path, err := exec.LookPath(sh); err == nil {
			cmd := exec.Command(path, "-n")
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", sh, err, out)
			}
		}
	}
}

// Every component's --example output, saved as one file, is one pipeline
// that validates, and the component appears in it once: a cov example is not
// fed by a second cov, the file source's example is not followed by the file
// sink's.
func TestEveryExampleSavesAsOneValidFile(t *testing.T) {
	dir := t.TempDir()
	// The lookup example reads this table, relative to the working directory.
	harness.WriteFile(t, dir, "tags.csv", "asset,tag,unit,site\nline1,temperature,degC,north\n")
	seen := map[string]bool{}
	for _, s := range registry().All() {
		for _, name := range []string{s.Type, string(s.Kind) + "." + s.Type} {
			if seen[name] {
				continue
			}
			seen[name] = true
			code, src, stderr := flowdOut(t, nil, "components", "--example", name)
			if code != 0 {
				t.Errorf("components --example %s: exit %d\n%s", name, code, stderr)
				continue
			}
			if n := strings.Count(src, "pipeline \""); n != 1 {
				t.Errorf("components --example %s: %d pipelines, want 1:\n%s", name, n, src)
			}
			if n := strings.Count(src, fmt.Sprintf("%s %q ", s.Kind, s.Type)); n != 1 && name == string(s.Kind)+"."+s.Type {
				t.Errorf("components --example %s: %d %s %q blocks, want 1:\n%s", name, n, s.Kind, s.Type, src)
			}
			f := harness.WriteFile(t, dir, strings.ReplaceAll(name, ".", "-")+".hcl", src)
			if code, out, stderr := flowdIn(t, dir, nil, "validate", f); code != 0 {
				t.Errorf("the example of %s does not validate: exit %d\n%s%s\n%s", name, code, out, stderr, src)
			}
		}
	}
	if _, _, stderr := flowdOut(t, nil, "components", "--example", "file"); !strings.Contains(stderr, "--example sink.file") {
		t.Errorf("components --example file does not point to the sink's example:\n%s", stderr)
	}
}

// setValidateEnv sets the placeholder secrets of pipelines/validate.env, as
// the Makefile's validate loop does.
func setValidateEnv(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "pipelines", "validate.env"))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		value = strings.Trim(value, `"`)
		t.Setenv(name, value)
		env = append(env, name+"="+value)
	}
	if len(env) == 0 {
		t.Fatal("pipelines/validate.env sets nothing")
	}
	return env
}

// plant.hcl's Event Hubs connection string is a required secret: without it
// validate fails at its file:line:col naming the variable (it used to fall
// back to a fake one and fail only at run time); with it, plant.hcl is valid.
func TestRequiredSecretFailsValidateNamingIt(t *testing.T) {
	plant := filepath.Join(harness.RepoRoot(), "pipelines", "plant.hcl")
	env := setValidateEnv(t)
	os.Unsetenv("EVENTHUBS_CONNECTION_STRING") // flowdOut passes os.Environ() on
	code, _, stderr := flowdOut(t, nil, "validate", plant)
	if code != exitInvalid || !regexp.MustCompile(`plant\.hcl:\d+:\d+: error: `).MatchString(stderr) ||
		!strings.Contains(stderr, "environment variable EVENTHUBS_CONNECTION_STRING is not set") {
		t.Fatalf("validate plant.hcl without the secret: exit %d, want 1 naming EVENTHUBS_CONNECTION_STRING\n%s", code, stderr)
	}
	if code, stdout, stderr := flowdOut(t, env, "validate", plant); code != 0 {
		t.Fatalf("validate plant.hcl with the placeholders: exit %d\n%s%s", code, stdout, stderr)
	}
}

// validate's diagnostics for the mistakes a newcomer makes, through the real
// binary: each at its file:line:col, with the fix where there is a likely one.
func TestValidateNewcomerMistakes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body string
		want       []string // in stderr
		errors     int
		warnings   int
	}{
		{"scheme", `  source "opcua" "plc" {
    endpoint = "10.0.0.1:4840"
    nodes    = { t = "ns=2;s=T" }
  }
  source "mqtt" "m" {
    broker = "http://u:s3cret@127.0.0.1:1883"
    topics = ["a/#"]
  }
  sink "kafka" "k" {
    inputs  = [source.plc, source.m]
    brokers = ["kafka://127.0.0.1:9092"]
    topic   = "t"
  }
`, []string{
			`scheme.hcl:3:16: error: Invalid value for "endpoint"`, "has no scheme: want opc.tcp://",
			`scheme.hcl:7:14: error: Invalid value for "broker"`, `scheme "http" of "http://xxxxx@127.0.0.1:1883"`,
			`scheme.hcl:12:15: error: Invalid value for "brokers"`, "drop kafka://",
		}, 3, 0},
		{"assign", `  source "sim" "a" {}
  transform "expr" "clean" {
    inputs = [source.a]
    where  = "quality = 'good'"
  }
  sink "stdout" "out" {
    inputs = [transform.clean]
  }
`, []string{`assign.hcl:5:23: error: `, "did you mean == (a comparison)?"}, 1, 0},
		{"case", `  source "sim" "a" {}
  transform "expr" "clean" {
    inputs = [source.a]
    set    = { value = "c_to_F(value)" }
  }
  sink "stdout" "out" {
    inputs = [transform.clean]
  }
`, []string{`case.hcl:5:25: error: `, "unknown name c_to_F; did you mean c_to_f?"}, 1, 0},
		// A misspelt type is the one diagnostic: what feeds it is not
		// "unused", what reads from it is not "undeclared".
		{"type", `  source "sim" "a" {}
  transform "exprr" "clean" {
    inputs = [source.a]
    where  = "quality == 'good'"
  }
  transform "cov" "changes" {
    inputs = [transform.clean]
  }
  sink "stdout" "out" {
    inputs = [transform.changes]
  }
`, []string{`type.hcl:3:13: error: Unknown transform type`, `Did you mean "expr"?`}, 1, 0},
	}
	for _, c := range cases {
		f := harness.WriteFile(t, dir, c.name+".hcl", "pipeline \"p\" {\n"+c.body+"}\n")
		code, _, stderr := flowdOut(t, nil, "validate", f)
		if code != exitInvalid {
			t.Errorf("%s: exit %d, want 1\n%s", c.name, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: missing %q in:\n%s", c.name, w, stderr)
			}
		}
		if n := strings.Count(stderr, ": error: "); n != c.errors {
			t.Errorf("%s: %d errors, want %d:\n%s", c.name, n, c.errors, stderr)
		}
		if n := strings.Count(stderr, ": warning: "); n != c.warnings {
			t.Errorf("%s: %d warnings, want %d:\n%s", c.name, n, c.warnings, stderr)
		}
		// The messages never repeat a password in a URL (the source
		// snippet under them shows the file's own line as written).
		if regexp.MustCompile(`(?m)^[^ ].*s3cret`).MatchString(stderr) {
			t.Errorf("%s: a password in a URL is printed:\n%s", c.name, stderr)
		}
	}

	// --strict: a warning fails validation, without it the file is valid.
	f := harness.WriteFile(t, dir, "unused.hcl", `pipeline "p" {
  source "sim" "a" {}
  source "sim" "spare" {}
  sink "stdout" "out" {
    inputs = [source.a]
  }
}
`)
	if code, stdout, stderr := flowdOut(t, nil, "validate", f); code != 0 || !strings.Contains(stderr, "unused.hcl:3:3: warning: Unused source") {
		t.Errorf("validate with a warning: exit %d, want 0 with the warning\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := flowdOut(t, nil, "validate", f, "--strict"); code != exitInvalid || !strings.Contains(stderr, "--strict makes warnings fail") || strings.Contains(stdout, "valid:") {
		t.Errorf("validate --strict with a warning: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
}

// The sim source's bad samples reach a file with their status name, and a
// quality filter removes exactly them.
func TestSimBadQualityThroughThePipeline(t *testing.T) {
	dir := t.TempDir()
	all, good := filepath.Join(dir, "all.jsonl"), filepath.Join(dir, "good.jsonl")
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "sim" "plant" {
    assets    = 3
    tags      = 7
    count     = 2100
    fast      = true
    bad_ratio = 0.2
  }
  transform "expr" "good" {
    inputs = [source.plant]
    where  = "quality == 'good'"
  }
  sink "file" "all" {
    inputs = [source.plant]
    path   = "`+all+`"
  }
  sink "file" "good" {
    inputs = [transform.good]
    path   = "`+good+`"
  }
}
`)
	if code, _, stderr := flowdOut(t, nil, "run", pipe, "--http", "off"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	type pt struct {
		Tag        string `json:"tag"`
		Quality    string `json:"quality"`
		Status     uint32 `json:"status"`
		StatusName string `json:"status_name"`
	}
	allPts, goodPts := harness.ReadJSONL[pt](t, all), harness.ReadJSONL[pt](t, good)
	bad := 0
	for _, p := range allPts {
		if p.Quality == "bad" {
			bad++
			if p.Status != 0x808C0000 || p.StatusName != "BadSensorFailure" {
				t.Fatalf("bad point %+v, want status 2156658688 named BadSensorFailure", p)
			}
		}
	}
	if len(allPts) != 2100 || bad < 300 || bad > 540 || len(goodPts) != len(allPts)-bad {
		t.Errorf("%d points, %d bad, %d passed the filter; want 2100, about 420, the rest", len(allPts), bad, len(goodPts))
	}
}
