package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/term"
)

// load reads and validates pipeline files, printing every diagnostic.
func load(paths []string, vars map[string]string, dataDir string, logger *slog.Logger, metrics prometheus.Registerer, stderr io.Writer) (*config.Config, bool) {
	cfg, diags := loadDiags(paths, vars, dataDir, logger, metrics, stderr)
	return cfg, !diags.HasErrors()
}

// loadDiags is load returning the diagnostics it printed.
func loadDiags(paths []string, vars map[string]string, dataDir string, logger *slog.Logger, metrics prometheus.Registerer, stderr io.Writer) (*config.Config, hcl.Diagnostics) {
	l := config.NewLoader(config.Options{Registry: registry(), Vars: vars, DataDir: dataDir, Logger: logger, Metrics: metrics})
	cfg, diags := l.LoadFiles(paths)
	printDiags(stderr, l.Files(), diags)
	return cfg, diags
}

func printDiags(out io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	color := false
	if f, ok := out.(*os.File); ok {
		color = term.IsTerminal(int(f.Fd()))
	}
	w := &lineLimiter{w: out, max: maxDiagLine}
	defer w.flush()
	dw := hcl.NewDiagnosticTextWriter(w, files, 100, color)
	errs := 0
	for _, d := range diags {
		sev := "warning"
		if d.Severity == hcl.DiagError {
			sev = "error"
			errs++
		}
		// A compact file:line:col line first, for editors and grep; then HCL's
		// own rendering with the source snippet.
		if d.Subject != nil {
			fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, d.Summary)
		} else {
			fmt.Fprintf(w, "%s: %s\n", sev, d.Summary)
		}
		dw.WriteDiagnostic(d)
	}
	if errs > 0 {
		fmt.Fprintf(w, "%d error(s)\n", errs)
	}
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	vars := varFlags{}
	fs.Var(vars, "var", "set a variable: --var name=value (repeatable)")
	verbose := fs.Bool("verbose", false, "also print what components plan to do (e.g. the Modbus block reads)")
	strict := fs.Bool("strict", false, "warnings fail too (exit 1), as in CI")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowd validate [--strict] [--verbose] [--var name=value] FILE|DIR...")
		fs.PrintDefaults()
	}
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg, diags := loadDiags(fs.Args(), vars, "", quiet, nil, stderr)
	if diags.HasErrors() {
		return exitInvalid
	}
	if *strict && len(diags) > 0 {
		fmt.Fprintf(stderr, "%d warning(s), and --strict makes warnings fail\n", len(diags))
		return exitInvalid
	}
	n := 0
	for _, p := range cfg.Pipelines {
		n += len(p.Nodes)
		if !*verbose {
			continue
		}
		for _, nd := range p.Nodes {
			// components that plan their work up front say how
			if pl, ok := nd.Component.(interface{ Plan() string }); ok {
				fmt.Fprintf(stdout, "pipeline %q %s.%s:\n%s", p.Name, nd.Kind, nd.Name, pl.Plan())
			}
		}
	}
	fmt.Fprintf(stdout, "valid: %d pipeline(s), %d component(s)\n", len(cfg.Pipelines), n)
	return exitOK
}

func cmdFmt(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fmt", flag.ContinueOnError)
	write := fs.Bool("w", false, "write the result back to the files")
	check := fs.Bool("check", false, "exit 1 when a file is not formatted (prints its name)")
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: flowd fmt [-w] [-check] FILE..."); fs.PrintDefaults() }
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	files, err := config.ExpandPaths(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "flowd fmt:", err)
		return exitInvalid
	}
	code := exitOK
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			fmt.Fprintln(stderr, "flowd fmt:", err)
			return exitInvalid
		}
		_, diags := hclwrite.ParseConfig(src, name, hcl.InitialPos)
		if diags.HasErrors() {
			printDiags(stderr, nil, diags)
			return exitInvalid
		}
		out := hclwrite.Format(src)
		switch {
		case *check:
			if !bytes.Equal(src, out) {
				fmt.Fprintln(stdout, name)
				code = exitInvalid
			}
		case *write:
			if !bytes.Equal(src, out) {
				if err := os.WriteFile(name, out, 0o644); err != nil {
					fmt.Fprintln(stderr, "flowd fmt:", err)
					return exitInvalid
				}
			}
		default:
			stdout.Write(out)
		}
	}
	return code
}

// maxDiagLine bounds a printed line: a source snippet of a file that is one
// long line (minified, garbled) would otherwise repeat it whole per diagnostic.
const maxDiagLine = 240

// lineLimiter cuts lines longer than max bytes, marking the cut with "…", and
// redacts secrets (a URL's password from env()) in every line.
type lineLimiter struct {
	w   io.Writer
	max int
	buf []byte
	cut bool
}

func (l *lineLimiter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			l.buf = append(l.buf, c)
			l.cut = false
			continue
		}
		if l.cut {
			continue
		}
		if n := len(l.buf) - 1 - bytes.LastIndexByte(l.buf, '\n'); n >= l.max && c&0xc0 != 0x80 {
			l.buf = append(l.buf, "…"...)
			l.cut = true
			continue
		}
		l.buf = append(l.buf, c)
	}
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		// Whole lines only: a secret is never split across two writes.
		if _, err := io.WriteString(l.w, engine.Redact(string(l.buf[:i+1]))); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineLimiter) flush() {
	if len(l.buf) > 0 {
		io.WriteString(l.w, engine.Redact(string(l.buf)))
		l.buf = l.buf[:0]
	}
}
