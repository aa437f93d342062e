package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// Absurd sizes and counts (10^12) on every component that allocates by
// them are refused by `flowd validate` with a diagnostic on each attribute,
// exit 1, and never a Go stack trace (issue 15, item 13).
func TestValidateRefusesAbsurdSizesOnEveryComponent(t *testing.T) {
	const huge = "1000000000000"
	cases := []struct {
		name  string
		block string   // the component block, inputs filled in by the wrapper
		attrs []string // every one must be blamed ("=…": a message that must be printed)
	}{
		{"sim", `source "sim" "x" {
    assets     = HUGE
    batch_size = HUGE
  }`, []string{"tags", "batch_size"}},
		{"file source", `source "file" "x" {
    path       = "in.jsonl"
    batch_size = HUGE
    max_line   = HUGE
  }`, []string{"batch_size", "max_line"}},
		{"mqtt source", `source "mqtt" "x" {
    broker          = "mqtt://127.0.0.1:1883"
    topics          = ["a/#"]
    group           = "g"
    connections     = HUGE
    receive_maximum = HUGE
    batch_size      = HUGE
    max_payload     = HUGE
  }`, []string{"connections", "receive_maximum", "batch_size", "max_payload"}},
		{"opcua", `source "opcua" "x" {
    endpoint                   = "opc.tcp://127.0.0.1:4840"
    nodes                      = { t = "ns=2;s=A" }
    queue_size                 = HUGE
    max_nodes_per_read         = HUGE
    max_items_per_subscription = HUGE
  }`, []string{"queue_size", "max_nodes_per_read", "max_items_per_subscription"}},
		{"modbus", `source "modbus" "x" {
    max_registers = HUGE
    max_bits      = HUGE
    device "d" {
      endpoint = "127.0.0.1:502"
      tag "t" {
        address = 0
        count   = HUGE
      }
    }
  }`, []string{"max_registers", "max_bits"}},
		// address + count × size wrapped around past the largest int and
		// passed the address check: the tags were then expanded until
		// memory ran out.
		{"modbus count", `source "modbus" "x" {
    device "d" {
      endpoint = "127.0.0.1:502"
      tag "t" {
        address = 0
        count   = HUGE
      }
      tag "wrap" {
        address = 1
        count   = 9223372036854775807
      }
    }
  }`, []string{"count", "=9223372036854775807 values from address 1 run past address 65535"}},
		{"http", `source "http" "x" {
    listen      = "127.0.0.1:0"
    max_body    = HUGE
    max_pending = HUGE
  }`, []string{"max_body", "max_pending"}},
		{"udp", `source "udp" "x" {
    listen      = "127.0.0.1:0"
    max_payload = HUGE
    queue       = HUGE
    batch_size  = HUGE
    read_buffer = HUGE
  }`, []string{"max_payload", "queue", "batch_size", "read_buffer"}},
		{"kafka source", `source "kafka" "x" {
    brokers             = ["127.0.0.1:9092"]
    topics              = ["t"]
    group               = "g"
    batch_size          = HUGE
    max_poll_records    = HUGE
    max_in_flight       = HUGE
    max_in_flight_bytes = HUGE
    max_payload         = HUGE
    fetch_max_bytes     = HUGE
  }`, []string{"batch_size", "max_poll_records", "max_in_flight", "max_in_flight_bytes", "max_payload", "fetch_max_bytes"}},
		{"cov", `transform "cov" "x" {
    max_tags = HUGE
  }`, []string{"max_tags"}},
		{"mqtt sink", `sink "mqtt" "x" {
    broker       = "mqtt://127.0.0.1:1883"
    topic        = "t"
    max_inflight = HUGE
    buffer {
      max_points    = HUGE
      max_in_flight = HUGE
    }
  }`, []string{"max_inflight", "max_points", "max_in_flight"}},
		{"kafka sink", `sink "kafka" "x" {
    brokers              = ["127.0.0.1:9092"]
    topic                = "t"
    max_buffered_records = HUGE
    max_buffered_bytes   = HUGE
    batch_max_bytes      = HUGE
    max_message_bytes    = HUGE
  }`, []string{"max_buffered_records", "max_buffered_bytes", "batch_max_bytes", "max_message_bytes"}},
		{"eventhubs", `sink "eventhubs" "x" {
    connection_string    = "Endpoint=sb://x.example/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=h"
    retries              = HUGE
    max_buffered_records = HUGE
    max_message_bytes    = HUGE
  }`, []string{"retries", "max_buffered_records", "max_message_bytes"}},
		{"cassandra", `sink "cassandra" "x" {
    hosts           = ["127.0.0.1"]
    keyspace        = "ks"
    max_in_flight   = HUGE
    max_batch_rows  = HUGE
    coalesce_points = HUGE
    retries         = HUGE
    connections     = HUGE
  }`, []string{"max_in_flight", "max_batch_rows", "coalesce_points", "retries", "connections"}},
		{"pipeline", "sink \"discard\" \"x\" {\n  }", []string{"queue_size"}},
	}
	bin := harness.Flowd(t)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			block := strings.ReplaceAll(c.block, "HUGE", huge)
			var src string
			switch {
			case strings.HasPrefix(block, "source"):
				src = fmt.Sprintf("pipeline \"p\" {\n  %s\n  sink \"discard\" \"d\" {\n    inputs = [source.x]\n  }\n}\n", block)
			case strings.HasPrefix(block, "transform"):
				block = strings.Replace(block, "{", "{\n    inputs = [source.s]", 1)
				src = fmt.Sprintf("pipeline \"p\" {\n  source \"sim\" \"s\" {}\n  %s\n  sink \"discard\" \"d\" {\n    inputs = [transform.x]\n  }\n}\n", block)
			default:
				block = strings.Replace(block, "{", "{\n    inputs = [source.s]", 1)
				queue := ""
				if c.name == "pipeline" {
					queue = "  queue_size = " + huge + "\n"
				}
				src = fmt.Sprintf("pipeline \"p\" {\n%s  source \"sim\" \"s\" {}\n  %s\n}\n", queue, block)
			}
			f := harness.WriteFile(t, dir, "p.hcl", src)
			cmd := exec.Command(bin, "validate", f)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1:\n%s\n%s", err, out, src)
			}
			s := string(out)
			if strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") {
				t.Fatalf("a stack trace:\n%s", s)
			}
			for _, a := range c.attrs {
				if msg, ok := strings.CutPrefix(a, "="); ok {
					if !strings.Contains(s, msg) {
						t.Errorf("no %q in:\n%s", msg, s)
					}
					continue
				}
				if !strings.Contains(s, "\n"+a+": ") && !strings.Contains(s, "Invalid "+a) && !strings.Contains(s, "Invalid buffer "+a) {
					t.Errorf("nothing blames %s in:\n%s", a, s)
				}
				if !strings.Contains(s, f+":") {
					t.Errorf("no file:line:col in:\n%s", s)
				}
			}
		})
	}
}
