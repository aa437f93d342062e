package lookup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/transforms/internal/benchcpu"
	"github.com/flowd/flowd/transforms/internal/golden"
)

func TestGolden(t *testing.T) { golden.Run(t) }

func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, c Config) *Transform {
	t.Helper()
	if c.Format == "" {
		c.Format = "auto"
	}
	if c.OnMiss == "" {
		c.OnMiss = "pass"
	}
	tr, err := New(&c, &engine.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.(*Transform)
}

func TestReloadWhenTheFileChanges(t *testing.T) {
	dir := t.TempDir()
	path := write(t, dir, "t.csv", "asset,site\nl1,north\n")
	tr := build(t, Config{Path: path, ReloadInterval: time.Second})
	clock := int64(0)
	tr.now = func() int64 { return clock }
	tr.checked = 0
	site := func() string {
		out := tr.Process(context.Background(), []engine.Point{{Asset: "l1", Tag: "x"}})
		return out[0].Attrs["site"]
	}
	if s := site(); s != "north" {
		t.Fatalf("site = %q", s)
	}
	write(t, dir, "t.csv", "asset,site\nl1,south-west\n")
	if s := site(); s != "north" {
		t.Fatalf("reloaded before reload_interval: %q", s)
	}
	clock = int64(2 * time.Second)
	if s := site(); s != "south-west" {
		t.Fatalf("after a change, site = %q", s)
	}
	// A broken version keeps the table that works.
	write(t, dir, "t.csv", "asset,site\n\"l1,broken\n")
	clock = int64(4 * time.Second)
	if s := site(); s != "south-west" {
		t.Fatalf("after a bad reload, site = %q", s)
	}
	os.Remove(path)
	clock = int64(6 * time.Second)
	if s := site(); s != "south-west" {
		t.Fatalf("after the file vanished, site = %q", s)
	}
}

func TestSharedMapIsNeverWritten(t *testing.T) {
	path := write(t, t.TempDir(), "t.json", `[{"asset":"a","unit":"C"}]`)
	tr := build(t, Config{Path: path, Overwrite: true})
	out := tr.Process(context.Background(), []engine.Point{{Asset: "a", Tag: "x"}, {Asset: "a", Tag: "y", Attrs: map[string]string{"unit": "F", "k": "v"}}})
	if out[0].Attrs["unit"] != "C" || len(out[0].Attrs) != 1 {
		t.Fatalf("first: %v", out[0].Attrs)
	}
	if out[1].Attrs["unit"] != "C" || out[1].Attrs["k"] != "v" {
		t.Fatalf("second: %v", out[1].Attrs)
	}
	out[1].Attrs["unit"] = "changed"
	again := tr.Process(context.Background(), []engine.Point{{Asset: "a", Tag: "z"}})
	if again[0].Attrs["unit"] != "C" {
		t.Fatal("the table's map was changed through a point")
	}
}

func TestBadTables(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"noheader.csv": "",
		"nokey.csv":    "site,unit\nn,C\n",
		"emptykey.csv": "asset,tag,unit\n,,C\n",
		"bad.json":     `{"asset": "a"}`,
		"nested.json":  `[{"asset": "a", "x": {"y": 1}}]`,
		"ragged.csv":   "asset,unit\na,C,extra\n",
	} {
		c := Config{Path: write(t, dir, name, content), Format: "auto", OnMiss: "pass"}
		_, err := New(&c, &engine.Env{})
		var fe *engine.FieldError
		if err == nil || !asField(err, &fe) || fe.Field != "path" {
			t.Errorf("%s: got %v, want an error on path", name, err)
		}
	}
	c := Config{Path: filepath.Join(dir, "missing.csv"), Format: "auto", OnMiss: "pass"}
	if _, err := New(&c, &engine.Env{}); err == nil {
		t.Error("a missing table must fail")
	}
}

func asField(err error, fe **engine.FieldError) bool {
	f, ok := err.(*engine.FieldError)
	*fe = f
	return ok
}

func table(t testing.TB) string {
	s := "asset,tag,unit,site\n"
	for a := 0; a < 10; a++ {
		s += fmt.Sprintf("line%d,,,site%d\n", a, a%3)
	}
	for i := 0; i < 100; i++ {
		s += fmt.Sprintf(",tag%03d,u%d,\n", i, i%5)
	}
	return write(t, t.TempDir(), "t.csv", s)
}

func batch() []engine.Point {
	pts := make([]engine.Point, 1000)
	for i := range pts {
		pts[i] = engine.Point{Asset: fmt.Sprintf("line%d", i/100), Tag: fmt.Sprintf("tag%03d", i%100), Value: engine.Float(1)}
	}
	return pts
}

func TestZeroAllocsPerBatch(t *testing.T) {
	tr := build(t, Config{Path: table(t), ReloadInterval: time.Hour})
	src := batch()
	buf := make([]engine.Point, len(src))
	copy(buf, src)
	tr.Process(context.Background(), buf)
	allocs := testing.AllocsPerRun(50, func() {
		copy(buf, src)
		out := tr.Process(context.Background(), buf)
		if out[999].Attrs["site"] != "site0" || out[999].Attrs["unit"] != "u4" {
			t.Fatalf("attrs %v", out[999].Attrs)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of 1000, want 0", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	tr := build(b, Config{Path: table(b), ReloadInterval: time.Second})
	src := batch()
	buf := make([]engine.Point, len(src))
	benchcpu.Loop(b, len(buf), func() {
		copy(buf, src)
		tr.Process(context.Background(), buf)
	})
}
