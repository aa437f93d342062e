package main

import (
	"strings"
	"testing"
)

// flowd sim modbus names the flag that is wrong.
func TestSimModbusFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nowhere"}, "--listen"},
		{[]string{"--unit", "300"}, "--unit: want 1 to 255, got 300"},
		{[]string{"--unit", "0"}, "--unit: want 1 to 255, got 0"},
	} {
		var stdout, stderr strings.Builder
		if code := cmdSimModbus(c.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), exitUsage, c.want)
		}
	}
}
