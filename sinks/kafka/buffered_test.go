package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// With the broker holding every produce request, the client's buffer fills
// and max_buffered_bytes stops the write long before max_buffered_records
// would: large points cannot pile up in memory behind a stalled broker.
// Released, every write settles delivered.
func TestBufferedBytesBoundBlocksProduce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bound  engine.Size
		blocks bool
	}{
		{"bound below the write", 64 << 10, true},
		{"bound above the write", 64 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "plant"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			release := make(chan struct{})
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				c.SleepControl(func() { <-release })
				return nil, nil, false
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := config(c.ListenAddrs()...)
			cfg.MaxMessageBytes, cfg.MaxBufferedBytes = 16<<10, tc.bound
			s := connected(ctx, t, cfg)

			// 64 records of 8 KiB: 512 KiB, far below max_buffered_records.
			pts := make([]engine.Point, 64)
			for i := range pts {
				pts[i] = engine.Point{Asset: "a", Tag: "t", Value: engine.String(strings.Repeat("x", 8<<10)), TS: int64(i)}
			}
			returned, settled := make(chan struct{}), make(chan error, 1)
			go func() {
				s.WriteAsync(ctx, pts, func(err error) { settled <- err })
				close(returned)
			}()
			wait := 10 * time.Second // returning is what the unbounded case must do
			if tc.blocks {
				wait = 500 * time.Millisecond // long enough for any buffer to fill
			}
			select {
			case <-returned:
				if tc.blocks {
					t.Fatal("WriteAsync returned with 512 KiB buffered under a 64 KiB bound")
				}
			case <-time.After(wait):
				if !tc.blocks {
					t.Fatal("WriteAsync blocked with 512 KiB buffered under a 64 MiB bound")
				}
			}
			close(release)
			select {
			case <-returned:
			case <-ctx.Done():
				t.Fatal("WriteAsync still blocked after the broker took the records")
			}
			if err := <-settled; err != nil {
				t.Fatalf("after the broker took the records: %v", err)
			}
		})
	}
}

// connected builds a sink from cfg and connects it; it is closed when the
// test ends.
func connected(ctx context.Context, t *testing.T, cfg *Config) *Sink {
	t.Helper()
	sk, err := New(cfg, env())
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}
