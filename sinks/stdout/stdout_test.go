package stdout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/flowd/flowd/engine/conformance"
)

// The stdout sink passes the sink conformance suite, its standard output
// read back through a pipe (format json; other lines are the test's own).
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SinkSetup {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			// The sink takes os.Stdout when it is built, within the check.
			stdout := os.Stdout
			os.Stdout = w
			var mu sync.Mutex
			var got []int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				sc := bufio.NewScanner(r)
				for sc.Scan() {
					var p struct{ Value int64 }
					if !bytes.HasPrefix(sc.Bytes(), []byte("{")) || json.Unmarshal(sc.Bytes(), &p) != nil {
						continue
					}
					mu.Lock()
					got = append(got, p.Value)
					mu.Unlock()
				}
			}()
			t.Cleanup(func() {
				os.Stdout = stdout
				w.Close()
				<-done
				r.Close()
			})
			return conformance.SinkSetup{
				Config: `format = "json"`,
				Received: func(context.Context) ([]int64, error) {
					mu.Lock()
					defer mu.Unlock()
					return append([]int64(nil), got...), nil
				},
			}
		},
		NoFailure: "standard output cannot be made to fail and recover from a test",
		NoReject:  "every point prints: the stdout sink has no point it cannot write",
	})
}
