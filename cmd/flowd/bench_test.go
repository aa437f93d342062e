package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowd/flowd/e2e/bench"
)

// The bench pipelines name only components this build has: the harness
// would refuse a scenario that needs another one before starting it.
func TestBenchPipelineComponents(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "pipelines", "bench", "*.hcl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bench pipelines (%v)", err)
	}
	for _, f := range files {
		missing, err := bench.MissingComponents(f, registry())
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if len(missing) > 0 {
			t.Errorf("%s needs %s, which this build does not have", f, strings.Join(missing, ", "))
		}
	}
}
