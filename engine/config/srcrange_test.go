package config

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestRangeRoundTrip checks that the engine's range keeps every part of an
// HCL range and prints it the same way (messages name ranges, e.g. "the first
// is at …").
func TestRangeRoundTrip(t *testing.T) {
	for _, r := range []hcl.Range{
		{Filename: "p.hcl", Start: hcl.Pos{Line: 3, Column: 5, Byte: 40}, End: hcl.Pos{Line: 3, Column: 9, Byte: 44}},
		{Filename: "dir/q.hcl", Start: hcl.Pos{Line: 1, Column: 1, Byte: 0}, End: hcl.Pos{Line: 4, Column: 2, Byte: 61}},
	} {
		er := toRange(r)
		if got := hclRange(er); got != r {
			t.Errorf("round trip of %v gives %v", r, got)
		}
		if er.String() != r.String() {
			t.Errorf("engine range prints %q, HCL %q", er.String(), r.String())
		}
	}
}
