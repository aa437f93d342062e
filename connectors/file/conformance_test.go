package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The file source passes the source conformance suite, reading a file
// written the way the file sink writes it.
func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SourceSetup {
			path := filepath.Join(t.TempDir(), "in.jsonl")
			return conformance.SourceSetup{
				Config: fmt.Sprintf("path = %q\nbatch_size = 50", path),
				Before: true,
				Produce: func(_ context.Context, vals []int64) error {
					f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
					if err != nil {
						return err
					}
					for _, v := range vals {
						fmt.Fprintf(f, "{\"asset\":\"a\",\"tag\":\"t%d\",\"value\":%d}\n", v, v)
					}
					return f.Close()
				},
			}
		},
		NoReconnect: "a local file has no peer to lose",
		Replays:     "the file source keeps no position: a restart reads the whole file again",
	})
}
