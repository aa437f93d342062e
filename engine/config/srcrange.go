package config

import (
	"github.com/flowd/flowd/engine"
	"github.com/hashicorp/hcl/v2"
)

// toRange keeps an HCL range in the engine's own type, so that the engine and
// the components carry where things were written without importing HCL.
func toRange(r hcl.Range) engine.Range {
	return engine.Range{Filename: r.Filename, Start: engine.Pos(r.Start), End: engine.Pos(r.End)}
}

// hclRange is the HCL range of an engine range, for diagnostics.
func hclRange(r engine.Range) hcl.Range {
	return hcl.Range{Filename: r.Filename, Start: hcl.Pos(r.Start), End: hcl.Pos(r.End)}
}
