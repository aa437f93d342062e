package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/harness"
)

// The admin endpoint answers only its own address, localhost and the names
// in service.allowed_hosts: a page that rebinds its own name to 127.0.0.1
// cannot read /api/status or /metrics.
func TestAdminEndpointRejectsForeignHost(t *testing.T) {
	dir := t.TempDir()
	pipe := harness.WriteFile(t, dir, "p.hcl", `service {
  allowed_hosts = ["gateway7.plant.local"]
}
pipeline "p" {
  source "sim" "s" {}
  sink "discard" "d" {
    inputs = [source.s]
  }
}
`)
	p := harness.Start(t, pipe)
	_, port, _ := strings.Cut(p.Addr, ":")
	for _, tc := range []struct {
		host string
		want int
	}{
		{p.Addr, 200},
		{"127.0.0.1", 200},
		{"localhost:" + port, 200},
		{"LOCALHOST.", 200},
		{"gateway7.plant.local:" + port, 200},
		{"evil.example", 403},
		{"evil.example:" + port, 403},
		{"127.0.0.1.nip.io:" + port, 403},
		{"10.1.2.3:" + port, 200}, // an address: a port mapping, never a rebinding
		{"[::1]:" + port, 200},
		{"gateway7.plant.local.evil.example", 403},
	} {
		for _, path := range []string{"/api/status", "/metrics", "/", "/healthz"} {
			req, _ := http.NewRequest("GET", "http://"+p.Addr+path, nil)
			req.Host = tc.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q %s: %d, want %d", tc.host, path, resp.StatusCode, tc.want)
			}
			if tc.want == 403 && (strings.Contains(string(body), "flowd_") || strings.Contains(string(body), "pipelines")) {
				t.Errorf("Host %q %s: the refusal carries data: %s", tc.host, path, body)
			}
		}
	}
}
