package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
)

// Every component type reports two independent problems of its block, each
// on its own attribute with file:line:col (issue 15, item 15).
func TestValidateReportsTwoErrorsOfEveryComponentType(t *testing.T) {
	cases := []struct {
		kind, typ string
		body      string
		want      map[string]string // attribute → part of its message
	}{
		{"source", "sim", "assets = 0\nbatch_size = 0", map[string]string{"assets": "must be at least 1", "batch_size": "must be between 1 and"}},
		{"source", "file", "path = \"x.jsonl\"\nbatch_size = 0\nrate = -1", map[string]string{"batch_size": "must be between 1 and", "rate": "must not be negative"}},
		{"source", "mqtt", "broker = \"mqtt://127.0.0.1:1883\"\ntopics = [\"a\"]\nqos = 3\nbatch_size = 0", map[string]string{"qos": "must be 0, 1 or 2", "batch_size": "must be between 1 and"}},
		{"source", "opcua", "endpoint = \"opc.tcp://127.0.0.1:4840\"\nnodes = { t = \"ns=2;s=A\" }\nqueue_size = 0\nkeepalive_count = 0", map[string]string{"queue_size": "must be between 1 and", "keepalive_count": "must be at least 1"}},
		{"source", "modbus", "timeout = \"0s\"\nmax_gap = -1\ndevice \"d\" {\n  endpoint = \"127.0.0.1:502\"\n  tag \"t\" {\n    address = 0\n  }\n}", map[string]string{"timeout": "must be positive", "max_gap": "must not be negative"}},
		{"source", "http", "listen = \"127.0.0.1:0\"\nmax_pending = 0\nack_timeout = \"0s\"", map[string]string{"max_pending": "must be between 1 and", "ack_timeout": "must be positive"}},
		{"source", "udp", "listen = \"127.0.0.1:0\"\nqueue = 0\nbatch_size = 0", map[string]string{"queue": "must be between 1 and", "batch_size": "must be between 1 and"}},
		{"source", "kafka", "brokers = [\"127.0.0.1:9092\"]\ntopics = [\"t\"]\ngroup = \"g\"\nmax_in_flight = 0\ncommit_interval = \"0s\"", map[string]string{"max_in_flight": "must be between 1 and", "commit_interval": "must be positive"}},
		{"transform", "expr", "where = \"value >\"\nset = { nope = \"1\" }", map[string]string{"~where": "unexpected token", "set": "cannot set \"nope\""}},
		{"transform", "cov", "deadband = -1\nmax_tags = 0\noverride {\n  match = \"[\"\n}", map[string]string{"deadband": "must not be negative", "max_tags": "must be between 1 and", "match": "syntax error in pattern"}},
		{"transform", "window", "size = \"0s\"\naggregates = [\"median\"]", map[string]string{"size": "must be positive", "aggregates": "\"median\" is not one of"}},
		{"transform", "lookup", "path = \"t.csv\"\nformat = \"xml\"\non_miss = \"keep\"", map[string]string{"format": "xml", "on_miss": "keep"}},
		{"sink", "file", "path = \"out.jsonl\"\nsync = \"maybe\"\nmode = \"overwrite\"", map[string]string{"sync": "true or false is required", "mode": "overwrite"}},
		{"sink", "stdout", "format = \"xml\"\nsample = \"many\"", map[string]string{"format": "xml", "sample": "a whole number is required"}},
		{"sink", "discard", "colour = 1\nspeed = 2", map[string]string{"@colour": "colour", "@speed": "speed"}},
		{"sink", "mqtt", "broker = \"mqtt://127.0.0.1:1883\"\ntopic = \"a/#\"\nmax_inflight = 0", map[string]string{"topic": "wildcards", "max_inflight": "must be between 1 and 65535"}},
		{"sink", "kafka", "brokers = []\ntopic = \"t\"\nmax_buffered_records = 0", map[string]string{"brokers": "needs at least one broker", "max_buffered_records": "must be between 1 and"}},
		{"sink", "eventhubs", "connection_string = \"Endpoint=sb://x.example/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=h\"\nretries = -1\ndelivery_timeout = \"0s\"", map[string]string{"retries": "must be between 0 and 100", "delivery_timeout": "must be positive"}},
		{"sink", "cassandra", "hosts = [\"127.0.0.1\"]\nkeyspace = \"ks\"\nmax_in_flight = 0\nconnections = 0", map[string]string{"max_in_flight": "must be between 1 and", "connections": "must be between 1 and 100"}},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.kind+" "+c.typ] = true
		t.Run(c.kind+"_"+c.typ, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir)
			src := pipelineAround(engine.ComponentKind(c.kind), c.typ, indent(c.body))
			f := harness.WriteFile(t, dir, "p.hcl", src)
			code, _, stderr := runCLI("validate", f)
			if code != exitInvalid {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			for attr, msg := range c.want {
				// "@attr": blamed on the name (an unknown attribute);
				// "~attr": inside the value (an expression).
				name, atName := strings.CutPrefix(attr, "@")
				name, inside := strings.CutPrefix(name, "~")
				line, col := valuePos(t, src, name)
				if atName {
					col -= len(name) + 3
				}
				pos := fmt.Sprintf("%s:%d:%d: error:", f, line, col)
				i := strings.Index(stderr, pos)
				if inside {
					m := regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf("%s:%d:", f, line)) + `(\d+): error:`).FindStringSubmatchIndex(stderr)
					if m != nil {
						if c, _ := strconv.Atoi(stderr[m[2]:m[3]]); c > col {
							i, pos = m[0], stderr[m[0]:m[1]]
						}
					}
				}
				if i < 0 {
					t.Errorf("%s: no diagnostic at %s in:\n%s", attr, pos, stderr)
					continue
				}
				if !strings.Contains(stderr[i:min(len(stderr), i+len(pos)+400)], msg) {
					t.Errorf("%s: diagnostic at %s does not say %q:\n%s", attr, pos, msg, stderr)
				}
			}
		})
	}
	for _, spec := range registry().All() {
		if !seen[string(spec.Kind)+" "+spec.Type] {
			t.Errorf("no case for %s %s", spec.Kind, spec.Type)
		}
	}
}

func indent(body string) string {
	var b strings.Builder
	for _, l := range strings.Split(body, "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// valuePos is the line and column of attr's value in src.
func valuePos(t *testing.T, src, attr string) (int, int) {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if strings.HasPrefix(trimmed, attr+" = ") {
			return i + 1, len(l) - len(trimmed) + len(attr) + 4
		}
	}
	t.Fatalf("no attribute %s in\n%s", attr, src)
	return 0, 0
}
