package file

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

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
