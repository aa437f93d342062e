package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// A password inside a broker URL appears in no output: not in the logs with
// the broker down (connection refused) or unknown (a DNS failure), not in
// /api/status, /metrics or the status page, and not in validate's report of
// a malformed URL that came from env().
func TestSecretsInURLsAreNeverPrinted(t *testing.T) {
	const secret = "s3cr3t-pw"
	dir := t.TempDir()
	pipe := harness.WriteFile(t, dir, "p.hcl", `pipeline "p" {
  source "mqtt" "in" {
    broker = env("SRC_BROKER")
    topics = ["a/#"]
  }
  sink "mqtt" "out" {
    inputs = [source.in]
    broker = env("SINK_BROKER")
    topic  = "x"
  }
}
`)
	env := []string{
		"SRC_BROKER=mqtt://user:" + secret + "@127.0.0.1:1",
		"SINK_BROKER=mqtt://user:" + secret + "@no-such-host.invalid:1883",
	}
	p := harness.StartEnv(t, env, pipe)
	get := func(path string) string {
		resp, err := http.Get("http://" + p.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Both connections have failed at least once, with the URL in the error.
	harness.Eventually(t, 30*time.Second, func() bool {
		s := get("/api/status")
		return strings.Count(s, `"last_error"`) >= 2 && strings.Contains(s, "no-such-host.invalid") && strings.Contains(s, "127.0.0.1:1")
	}, "both components report their connection error")
	outputs := map[string]string{
		"/api/status": get("/api/status"),
		"/metrics":    get("/metrics"),
		"/":           get("/"),
	}
	p.Stop(10 * time.Second)
	outputs["stderr"] = p.Stderr.String()
	for _, want := range []string{"connection refused", "no-such-host.invalid"} {
		if !strings.Contains(outputs["stderr"], want) {
			t.Errorf("the log does not report the failure (%q):\n%s", want, outputs["stderr"])
		}
	}

	bad := harness.WriteFile(t, dir, "bad.hcl", `pipeline "p" {
  source "mqtt" "in" {
    broker = env("SRC_BROKER")
    topics = ["a/#"]
  }
  sink "stdout" "out" {
    inputs = [source.in]
  }
}
`)
	cmd := exec.Command(harness.Flowd(t), "validate", bad)
	cmd.Env = append(cmd.Environ(), "SRC_BROKER=mqtt://user:"+secret+"@host:port")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "broker") {
		t.Fatalf("validate accepted a malformed URL: %v\n%s", err, out)
	}
	outputs["validate"] = string(out)

	for name, text := range outputs {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the password:\n%s", name, text)
		}
	}
}
