package file

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

// Lines are read whole up to max bytes; a longer line, whether it fits the
// reader's buffer or spans several fills, is reported with its size and
// skipped to its end, and reading goes on with the next line.
func TestLineReaderLongLines(t *testing.T) {
	long := strings.Repeat("x", 3000)
	in := "a\r\n" + strings.Repeat("y", 40) + "\n\n" + long + "\r\nbb\n" + strings.Repeat("z", 50) + "\nlast"
	type got struct {
		line string
		size int
	}
	want := []got{{"a", 1}, {strings.Repeat("y", 40), 40}, {"", 0}, {long[:rejectedPrefix], 3000}, {"bb", 2},
		{strings.Repeat("z", 50), 50}, {"last", 4}}
	for _, bufSize := range []int{16, 64, 4096} {
		r := &lineReader{r: bufio.NewReaderSize(strings.NewReader(in), bufSize), max: 40}
		var out []got
		for {
			b, n, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got{string(b), n})
		}
		if len(out) != len(want) {
			t.Fatalf("buffer %d: %d lines, want %d: %v", bufSize, len(out), len(want), out)
		}
		for i := range want {
			if out[i] != want[i] {
				t.Errorf("buffer %d line %d: %.20q… (%d bytes of %d), want %.20q… (%d bytes of %d)", bufSize, i,
					out[i].line, len(out[i].line), out[i].size, want[i].line, len(want[i].line), want[i].size)
			}
		}
	}
}

// BenchmarkLineReader reads 100-byte lines, the file source's inner loop
// before decoding.
func BenchmarkLineReader(b *testing.B) {
	data := []byte(strings.Repeat(strings.Repeat("x", 99)+"\n", 10000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := &lineReader{r: bufio.NewReaderSize(bytes.NewReader(data), 64*1024), max: 1 << 20}
		for {
			if _, _, err := r.next(); err != nil {
				break
			}
		}
	}
}

type collect struct{ pts []engine.Point }

func (c *collect) Emit(ctx context.Context, pts []engine.Point, done func(error)) error {
	c.pts = append(c.pts, pts...)
	if done != nil {
		done(nil)
	}
	return nil
}

// The file source reads back every format the file sink writes, through the
// same codecs (a line per message).
func TestReadsEveryCodecFormat(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	var in []engine.Point
	for i := range 30 {
		in = append(in, engine.Point{Asset: fmt.Sprintf("a%d", i%3), Tag: fmt.Sprintf("t%02d", i), Value: engine.Int(int64(i)), TS: ts + int64(i)})
	}
	all := codecs.All()
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		enc, err := all.Encoder(format)
		if err != nil {
			t.Fatal(err)
		}
		f := codec.Framer{Codec: enc, Delimit: '\n'}
		buf, _ := f.Append(nil, nil, append([]engine.Point(nil), in...), nil)
		path := filepath.Join(t.TempDir(), "in.jsonl")
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := New(&Config{Path: path, BatchSize: 7, MaxLine: 1 << 20, Format: format}, &engine.Env{Codecs: all})
		if err != nil {
			t.Fatal(err)
		}
		var out collect
		if err := src.Run(context.Background(), &out); err != nil {
			t.Fatal(err)
		}
		sort.Slice(out.pts, func(i, j int) bool { return out.pts[i].Tag < out.pts[j].Tag })
		if len(out.pts) != len(in) {
			t.Fatalf("%s: %d points back, want %d", format, len(out.pts), len(in))
		}
		for i := range in {
			g, w := out.pts[i], in[i]
			if g.Asset != w.Asset || g.Tag != w.Tag || !g.Value.Equal(w.Value) || g.TS != w.TS {
				t.Errorf("%s: got %+v, want %+v", format, g, w)
			}
		}
	}
	if _, err := New(&Config{Path: "x", BatchSize: 1, MaxLine: 1 << 20, Format: "xml"}, &engine.Env{Codecs: all}); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("unknown format: %v", err)
	}
}
