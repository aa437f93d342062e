package httpsource

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/engine/conformance"
)

// The http source passes the source conformance suite. The client posts
// points and retries what was not answered 200, as a client that wants
// its data delivered does.
func TestConformance(t *testing.T) {
	conformance.RunSource(t, conformance.Source{
		Spec: Spec,
		Setup: func(t *testing.T, _ string) conformance.SourceSetup {
			addr := freePort(t)
			return conformance.SourceSetup{
				Config:  fmt.Sprintf("listen = %q\nmax_pending = 1000\nretry_after = \"100ms\"\nack_timeout = \"2s\"", addr),
				Produce: func(ctx context.Context, vals []int64) error { return postValues(ctx, "http://"+addr+"/", vals) },
			}
		},
		NoReconnect: "the http source is the server: its clients connect to it, it has no peer to reconnect to",
	})
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// postValues sends vals in requests of 20 points, 8 at a time, each retried
// until it is answered 200 or ctx ends.
func postValues(ctx context.Context, url string, vals []int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 8)
	for i := 0; i < len(vals); i += 20 {
		chunk := vals[i:min(i+20, len(vals))]
		var b strings.Builder
		b.WriteString("[")
		for k, v := range chunk {
			if k > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"asset":"a","tag":"t%d","value":%d}`, v, v)
		}
		b.WriteString("]")
		sem <- struct{}{}
		wg.Add(1)
		go func(body string) {
			defer func() { <-sem; wg.Done() }()
			for {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return
					}
					err = fmt.Errorf("%s", resp.Status)
				}
				select {
				case <-ctx.Done():
					select {
					case errs <- fmt.Errorf("not taken: %w (%w)", err, ctx.Err()):
					default:
					}
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}(b.String())
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
