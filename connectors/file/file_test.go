package file

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
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
