package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The file sink passes the sink conformance suite; what it wrote is read
// back line by line.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SinkSetup {
			path := filepath.Join(t.TempDir(), "out.jsonl")
			return conformance.SinkSetup{
				Config: fmt.Sprintf("path = %q", path),
				Received: func(context.Context) ([]int64, error) {
					f, err := os.Open(path)
					if os.IsNotExist(err) {
						return nil, nil
					}
					if err != nil {
						return nil, err
					}
					defer f.Close()
					var out []int64
					sc := bufio.NewScanner(f)
					for sc.Scan() {
						var p struct{ Value int64 }
						if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
							return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
						}
						out = append(out, p.Value)
					}
					return out, sc.Err()
				},
			}
		},
		NoFailure: "a local file cannot be made to fail and recover from a test (a full disk needs privileges)",
		NoReject:  "every point encodes to a line: the file sink has no point it cannot write",
	})
}
