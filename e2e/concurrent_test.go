package e2e

import (
	"os"
	"testing"
)

var serialE2E = os.Getenv("FLOWD_E2E_SERIAL") != ""

// concurrent lets a test run beside the others marked so, after the serial
// tests have finished (Go runs a package's parallel tests last). A test is
// marked only when it restarts no shared server, owns its names (topics,
// client ids, keyspaces, Sparkplug groups, directories) and asserts nothing
// that two cores shared with another test could break: no latency or rate
// bound, no count of attempts in a time window, no shared server's request
// log. Such tests mostly wait (for a reconnect, a backoff, an outage), so
// running them together takes minutes off make test. FLOWD_E2E_SERIAL=1
// runs every test alone, to tell a race between tests from a defect.
func concurrent(t *testing.T) {
	t.Helper()
	if !serialE2E {
		t.Parallel()
	}
}
