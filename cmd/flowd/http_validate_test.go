package main

import (
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// An http source on the admin port (service.http_addr) is a diagnostic at
// its listen attribute, as is an expression error in its map block.
func TestValidateHTTPSourceOnAdminPort(t *testing.T) {
	dir := t.TempDir()
	bad := harness.WriteFile(t, dir, "bad.hcl", `service {
  http_addr = "127.0.0.1:9390"
}
pipeline "p" {
  source "http" "in" {
    listen = "0.0.0.0:9390"
  }
  source "http" "hook" {
    listen = "127.0.0.1:9391"
    format = "map"
    map = {
      values = "payload.object +"
    }
  }
  sink "discard" "out" {
    inputs = [source.in, source.hook]
  }
}
`)
	code, _, stderr := runCLI("validate", bad)
	if code != exitInvalid {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{
		bad + `:6:14: error: Invalid source "in"`, "is the admin address",
		bad + `:12:32: error: Invalid source "hook"`, "map.values",
		"2 error(s)",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}
