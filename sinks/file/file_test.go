package file

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
)

// Opening in append mode cuts off a torn last line an earlier run left (a
// crash mid-write), so what follows starts on a line of its own.
func TestConnectCutsTornLine(t *testing.T) {
	for _, c := range []struct{ before, after string }{
		{"", ""},
		{"{\"a\":1}\n", "{\"a\":1}\n"},
		{"{\"a\":1}\n{\"tag\":\"x\",\"va", "{\"a\":1}\n"},
		{"{\"tag\":\"x\",\"va", ""},
	} {
		path := filepath.Join(t.TempDir(), "out.jsonl")
		if err := os.WriteFile(path, []byte(c.before), 0o644); err != nil {
			t.Fatal(err)
		}
		sk, err := New(&Config{Path: path, Format: "json", Mode: "append"}, &engine.Env{Codecs: codecs.All()})
		if err != nil {
			t.Fatal(err)
		}
		s := sk.(*Sink)
		if err := s.Connect(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(context.Background(), []engine.Point{{Tag: "t", Value: engine.Int(1)}}); err != nil {
			t.Fatal(err)
		}
		s.Close(context.Background())
		got, _ := os.ReadFile(path)
		want := c.after + `{"tag":"t","value":1,"quality":"good","ts":"1970-01-01T00:00:00Z"}` + "\n"
		if string(got) != want {
			t.Errorf("%q: file is %q, want %q", c.before, got, want)
		}
	}
}

// A FIFO (a reader that may be slow or stuck) is only written to: no seek,
// no read-back, no truncate, and the sink never reads its own lines.
func TestWritesToAFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	sk, err := New(&Config{Path: path, Format: "json", Mode: "append"}, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	if err := s.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Write(context.Background(), []engine.Point{{Tag: "t", Value: engine.Int(int64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(context.Background())
	want := `{"tag":"t","value":0,"quality":"good","ts":"1970-01-01T00:00:00Z"}` + "\n" +
		`{"tag":"t","value":1,"quality":"good","ts":"1970-01-01T00:00:00Z"}` + "\n"
	if b := <-got; string(b) != want {
		t.Fatalf("the reader got %q, want %q", b, want)
	}
}

// A FIFO nobody reads holds neither Connect nor Write past their context:
// a shutdown with a stuck reader ends. Writes that wait for a slow reader
// still go through once it reads.
func TestFIFOWaitsEndWithTheContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	sk, err := New(&Config{Path: path, Format: "json", Mode: "append"}, &engine.Env{Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	s := sk.(*Sink)
	within := func(what string, fn func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s is still waiting 10 s on", what)
			return nil
		}
	}

	// No reader: Connect waits, and returns when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := within("Connect without a reader", func() error { return s.Connect(ctx) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect without a reader: %v", err)
	}

	// A reader that opens and does not read yet.
	opened := make(chan *os.File, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
		}
		opened <- f
	}()
	if err := within("Connect", func() error { return s.Connect(context.Background()) }); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	r := <-opened
	defer r.Close()
	big := make([]engine.Point, 2000) // far more than a pipe holds
	for i := range big {
		big[i] = engine.Point{Tag: "t", Value: engine.String(strings.Repeat("x", 100)), TS: int64(i)}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := within("Write to a stuck reader", func() error { return s.Write(ctx, big) }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write to a stuck reader: %v", err)
	}

	// Once the reader reads, a Write without a deadline goes through.
	go io.Copy(io.Discard, r)
	if err := within("Write", func() error { return s.Write(context.Background(), big) }); err != nil {
		t.Fatal(err)
	}
}
