package main

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/flowd/flowd/e2e/bench"
)

// The completion scripts are generated from the commands themselves: each
// command's flags are read from its own -h output, so a new command or flag
// completes without touching this file.

type complFlag struct {
	name, usage string
	value       bool // takes a value
}

type complCmd struct {
	path  []string // "run", or "sim", "plc"
	flags []complFlag
	words []string // positional words to offer
	files bool     // positional arguments are pipeline files or directories
}

var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_-]*)(?: (\S+))?`)

// commandFlags runs `flowd PATH... -h` and reads the flags it prints.
func commandFlags(path []string) []complFlag {
	var out, errb bytes.Buffer
	cli(append(slices.Clone(path), "-h"), &out, &errb)
	var flags []complFlag
	// Usage goes to stderr by convention; read stdout too, in case.
	lines := strings.Split(errb.String()+"\n"+out.String(), "\n")
	for i, l := range lines {
		m := flagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := complFlag{name: m[1], value: m[2] != ""}
		if _, u, ok := strings.Cut(l, "\t"); ok {
			f.usage = strings.TrimSpace(u) // a one-letter flag's usage shares its line
			f.value = false
			if _, typ, ok := strings.Cut(strings.TrimSpace(m[0]), " "); ok && typ != "" {
				f.value = true
			}
		} else if i+1 < len(lines) {
			f.usage = strings.TrimSpace(lines[i+1])
		}
		flags = append(flags, f)
	}
	return flags
}

// completionModel lists every command, its flags and what its positional
// arguments are.
func completionModel() []complCmd {
	var cmds []complCmd
	names := make([]string, 0, len(commands()))
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := complCmd{path: []string{n}}
		switch n {
		case "sim":
			for k := range simulators() {
				c.words = append(c.words, k)
			}
			sort.Strings(c.words)
			for _, k := range c.words {
				cmds = append(cmds, complCmd{path: []string{"sim", k}, flags: commandFlags([]string{"sim", k})})
			}
			cmds = append(cmds, c)
			continue
		case "components":
			for _, s := range registry().All() {
				if !slices.Contains(c.words, s.Type) {
					c.words = append(c.words, s.Type)
				}
			}
		case "codecs":
			for _, k := range registry().Codecs.All() {
				c.words = append(c.words, k.Name)
			}
		case "bench":
			for _, s := range bench.Scenarios() {
				c.words = append(c.words, s.Name)
			}
		case "completion":
			c.words = []string{"bash", "zsh", "fish"}
		case "version":
		default:
			c.files = true // run, validate, fmt and whatever else reads pipelines
		}
		c.flags = commandFlags(c.path)
		cmds = append(cmds, c)
	}
	return cmds
}

func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	const help = `Usage: flowd completion bash|zsh|fish

Prints a completion script for commands, flags, component and scenario names,
and pipeline files. Load it with:
  bash:  source <(flowd completion bash)     or save it as /etc/bash_completion.d/flowd
  zsh:   source <(flowd completion zsh)      or save it as _flowd in a directory of $fpath
  fish:  flowd completion fish | source      or save it as ~/.config/fish/completions/flowd.fish
`
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stderr, help)
		return exitOK
	}
	if len(args) != 1 {
		fmt.Fprint(stderr, help)
		return exitUsage
	}
	cmds := completionModel()
	switch args[0] {
	case "bash":
		writeBash(stdout, cmds)
	case "zsh":
		writeZsh(stdout, cmds)
	case "fish":
		writeFish(stdout, cmds)
	default:
		fmt.Fprintf(stderr, "flowd completion: unknown shell %q\n\n%s", args[0], help)
		return exitUsage
	}
	return exitOK
}

func topWords(cmds []complCmd) []string {
	var w []string
	for _, c := range cmds {
		if len(c.path) == 1 {
			w = append(w, c.path[0])
		}
	}
	return append(w, "help", "--help", "--version")
}

func flagNames(c complCmd, valued bool) []string {
	var out []string
	for _, f := range c.flags {
		if !valued || f.value {
			out = append(out, "--"+f.name)
		}
	}
	return out
}

func writeBash(w io.Writer, cmds []complCmd) {
	fmt.Fprintf(w, `# bash completion for flowd (flowd completion bash)
_flowd() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  local key=${COMP_WORDS[1]} flags="" valued="" words="" files=""
  if [ "$key" = sim ] && [ "$COMP_CWORD" -gt 2 ]; then key="sim ${COMP_WORDS[2]}"; fi
  case "$key" in
`, strings.Join(topWords(cmds), " "))
	for _, c := range cmds {
		fmt.Fprintf(w, "    %q) flags=%q; valued=%q; words=%q; files=%v ;;\n", strings.Join(c.path, " "),
			strings.Join(flagNames(c, false), " "), strings.Join(flagNames(c, true), " "), strings.Join(c.words, " "), map[bool]string{true: "1", false: `""`}[c.files])
	}
	fmt.Fprint(w, `  esac
  # A flag's value: files, the shell's default.
  local p=$prev
  [[ $p == -[!-]* ]] && p="-$p"
  if [[ " $valued " == *" $p "* && $cur != -* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [ -n "$files" ]; then
    COMPREPLY=($(compgen -d -- "$cur") $(compgen -f -X '!*.hcl' -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -o filenames -F _flowd flowd
`)
}

func writeZsh(w io.Writer, cmds []complCmd) {
	fmt.Fprint(w, "#compdef flowd\n# zsh completion for flowd (flowd completion zsh)\n_flowd() {\n")
	fmt.Fprint(w, "  if (( CURRENT == 2 )); then\n    local -a cmds=(\n")
	for _, c := range cmds {
		if len(c.path) == 1 {
			fmt.Fprintf(w, "      %s\n", zshQuote(c.path[0]+":"+commandSummary(c.path[0])))
		}
	}
	fmt.Fprint(w, "    )\n    _describe command cmds\n    compadd -- --help --version\n    return\n  fi\n")
	fmt.Fprint(w, "  local key=${words[2]}\n  if [[ $key == sim ]] && (( CURRENT > 3 )); then key=\"sim ${words[3]}\"; fi\n  case $key in\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "    %s)\n", zshQuote(strings.Join(c.path, " ")))
		fmt.Fprint(w, "      if [[ $PREFIX == -* ]]; then\n        local -a fl=(\n")
		for _, f := range c.flags {
			fmt.Fprintf(w, "          %s\n", zshQuote("--"+f.name+":"+strings.ReplaceAll(f.usage, ":", `\:`)))
		}
		fmt.Fprint(w, "        )\n        _describe flag fl\n")
		valued := flagNames(c, true)
		if len(valued) > 0 {
			fmt.Fprintf(w, "      elif [[ %s == *\" ${words[CURRENT-1]} \"* ]]; then\n        _files\n", zshQuote(" "+strings.Join(valued, " ")+" "+strings.ReplaceAll(strings.Join(valued, " "), "--", "-")+" "))
		}
		switch {
		case c.files:
			fmt.Fprint(w, "      else\n        _files -g '*.hcl(-.)'\n")
		case len(c.words) > 0:
			fmt.Fprintf(w, "      else\n        compadd -- %s\n", strings.Join(c.words, " "))
		}
		fmt.Fprint(w, "      fi\n      ;;\n")
	}
	fmt.Fprint(w, "  esac\n}\nif [ \"$funcstack[1]\" = \"_flowd\" ]; then\n  _flowd \"$@\"\nelse\n  compdef _flowd flowd\nfi\n")
}

func writeFish(w io.Writer, cmds []complCmd) {
	fmt.Fprint(w, "# fish completion for flowd (flowd completion fish)\ncomplete -c flowd -f\n")
	var top []string
	for _, c := range cmds {
		if len(c.path) == 1 {
			top = append(top, c.path[0])
		}
	}
	fmt.Fprintf(w, "complete -c flowd -n 'not __fish_seen_subcommand_from %s' -l version -d 'print the version'\n", strings.Join(top, " "))
	for _, c := range cmds {
		var cond string
		if len(c.path) == 1 {
			fmt.Fprintf(w, "complete -c flowd -n 'not __fish_seen_subcommand_from %s' -a %s -d %s\n", strings.Join(top, " "), c.path[0], fishQuote(commandSummary(c.path[0])))
			cond = "__fish_seen_subcommand_from " + c.path[0]
			if c.path[0] == "sim" {
				cond += "; and not __fish_seen_subcommand_from " + strings.Join(c.words, " ")
			}
		} else {
			cond = "__fish_seen_subcommand_from " + c.path[0] + "; and __fish_seen_subcommand_from " + c.path[1]
		}
		for _, f := range c.flags {
			r := ""
			if f.value {
				r = " -r -F"
			}
			opt := "-l"
			if len(f.name) == 1 {
				opt = "-o"
			}
			fmt.Fprintf(w, "complete -c flowd -n %s %s %s%s -d %s\n", fishQuote(cond), opt, f.name, r, fishQuote(f.usage))
		}
		if len(c.words) > 0 {
			fmt.Fprintf(w, "complete -c flowd -n %s -a %s\n", fishQuote(cond), fishQuote(strings.Join(c.words, " ")))
		}
		if c.files {
			fmt.Fprintf(w, "complete -c flowd -n %s -a '(__fish_complete_suffix .hcl)'\n", fishQuote(cond))
		}
	}
}

// commandSummary is a command's one-line description from the usage text.
func commandSummary(name string) string {
	for _, l := range strings.Split(usage, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == name && strings.HasPrefix(l, "  ") {
			// The description follows the argument synopsis after a run of spaces.
			if i := strings.LastIndex(l, "  "); i > 0 {
				return strings.TrimSpace(l[i:])
			}
		}
	}
	return name
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
func fishQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
