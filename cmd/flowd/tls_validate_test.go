package main

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// TestValidatePointsIntoTLSBlocks checks that a tls block whose files
// cannot be used is blamed at the attribute inside the block, with the same
// message, whichever component has it (each wraps the shared block's error
// in its own way).
func TestValidatePointsIntoTLSBlocks(t *testing.T) {
	dir := t.TempDir()
	bad := harness.WriteFile(t, dir, "bad.hcl", `pipeline "p" {
  source "mqtt" "m" {
    broker = "mqtts://127.0.0.1:8883"
    topics = ["a/#"]
    tls {
      ca_file = "/nonexistent/ca.pem"
    }
  }
  source "kafka" "k" {
    brokers = ["127.0.0.1:9092"]
    topics  = ["t"]
    group   = "g"
    tls {
      server_name = "x"
      cert_file   = "/nonexistent/c.pem"
    }
  }
  sink "mqtt" "o" {
    inputs = [source.m, source.k]
    broker = "mqtt://127.0.0.1:1883"
    topic  = "a"
    tls {
      key_file = "/nonexistent/k.pem"
    }
  }
  sink "kafka" "kk" {
    inputs  = [source.m]
    brokers = ["127.0.0.1:9092"]
    topic   = "t"
    tls {
      ca_file = "/nonexistent/ca.pem"
    }
  }
  sink "eventhubs" "e" {
    inputs            = [source.m]
    connection_string = "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=h"
    tls {
      ca_file = "/nonexistent/ca.pem"
    }
  }
}
`)
	code, _, stderr := runCLI("validate", bad)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{
		bad + `:6:17: error: Invalid source "m"`, "tls.ca_file: open /nonexistent/ca.pem",
		bad + `:15:21: error: Invalid source "k"`, "tls.cert_file: cert_file and key_file go together",
		// key_file alone: blamed on the block, since cert_file was not written.
		bad + `:22:5: error: Invalid sink "o"`,
		bad + `:31:17: error: Invalid sink "kk"`, "tls: tls.ca_file: open /nonexistent/ca.pem",
		bad + `:38:17: error: Invalid sink "e"`,
		"5 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}
