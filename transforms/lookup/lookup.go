// Package lookup is a transform that enriches points with attributes from a
// CSV or JSON table keyed by asset and/or tag, reloaded when the file changes.
package lookup

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowd/flowd/engine"
)

// Config is the lookup transform's configuration.
type Config struct {
	Path           string        `hcl:"path,required" doc:"the table: CSV with a header row, or JSON (an array of objects); columns asset and/or tag identify a row, the others become attrs"`
	Format         string        `hcl:"format" default:"auto" enum:"auto|csv|json" doc:"auto: by the file extension (.json is JSON, anything else CSV)"`
	Columns        []string      `hcl:"columns" doc:"the columns to copy into attrs (default: every column but asset and tag)"`
	Overwrite      bool          `hcl:"overwrite" doc:"table values replace attrs the point already has (default: the point's own attrs win)"`
	OnMiss         string        `hcl:"on_miss" default:"pass" enum:"pass|drop" doc:"a point no row matches: pass it unchanged, or drop it (counted, reason lookup_miss)"`
	ReloadInterval time.Duration `hcl:"reload_interval" default:"5s" doc:"how often to check the file for changes (0: never reload)"`
}

// Spec declares the lookup transform.
var Spec = engine.TransformSpec(engine.Info{
	Type:    "lookup",
	Summary: "Enriches points with attrs from a CSV or JSON table keyed by asset and/or tag, reloaded when the file changes.",
	Description: "A row with both asset and tag matches that pair; a row with only an asset (tag empty or absent) matches " +
		"every tag of that asset; a row with only a tag matches that tag on every asset. The more specific row wins " +
		"for a column both set. Empty cells are skipped. A table that fails to load at start is a configuration " +
		"error; a reload that fails keeps the previous table and logs why. A table file may hold at most 256MiB.",
	Example: `transform "lookup" "meta" {
  inputs = [transform.scale]
  # a CSV table with the columns asset,tag,unit,site
  path = "tags.csv"
}`,
}, New)

type key struct{ asset, tag string }

type cached struct {
	asset, tag string
	attrs      map[string]string // nil: no row matches
	next       *cached
}

// Transform enriches points.
type Transform struct {
	cfg     Config
	env     *engine.Env
	table   map[key]map[string]string
	stamp   fileStamp
	checked int64 // engine clock of the last change check
	seed    maphash.Seed
	cache   map[uint64]*cached
	ncache  int
	now     func() int64
}

const maxCache = 1 << 17

// maxTableSize bounds the table file, read whole into memory.
const maxTableSize = 256 << 20

type fileStamp struct {
	mod  time.Time
	size int64
}

// New loads the table; a table that cannot be read blames path.
func New(c *Config, env *engine.Env) (engine.Transform, error) {
	t := &Transform{cfg: *c, env: env, seed: maphash.MakeSeed(), now: engine.Now}
	if err := t.reload(); err != nil {
		return nil, &engine.FieldError{Field: "path", Offset: -1, Err: err}
	}
	t.checked = t.now()
	return t, nil
}

func (t *Transform) log() *slog.Logger {
	if t.env != nil && t.env.Logger != nil {
		return t.env.Logger
	}
	return slog.Default()
}

func (t *Transform) reload() error {
	st, err := os.Stat(t.cfg.Path)
	if err != nil {
		return err
	}
	// The table is read whole and kept in memory, with a map entry per row.
	if st.Size() > maxTableSize {
		return fmt.Errorf("%s: %d bytes; a table may have at most %d (256MiB)", t.cfg.Path, st.Size(), maxTableSize)
	}
	data, err := os.ReadFile(t.cfg.Path)
	if err != nil {
		return err
	}
	format := t.cfg.Format
	if format == "auto" || format == "" {
		format = "csv"
		if strings.EqualFold(filepath.Ext(t.cfg.Path), ".json") {
			format = "json"
		}
	}
	var rows []map[string]string
	if format == "json" {
		rows, err = parseJSON(data)
	} else {
		rows, err = parseCSV(data)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.cfg.Path, err)
	}
	table := make(map[key]map[string]string, len(rows))
	for i, r := range rows {
		k := key{r["asset"], r["tag"]}
		if k.asset == "" && k.tag == "" {
			return fmt.Errorf("%s: row %d has neither asset nor tag", t.cfg.Path, i+1)
		}
		attrs := map[string]string{}
		for col, v := range r {
			if col == "asset" || col == "tag" || v == "" {
				continue
			}
			if len(t.cfg.Columns) > 0 && !contains(t.cfg.Columns, col) {
				continue
			}
			attrs[col] = v
		}
		if prev, dup := table[k]; dup {
			for c, v := range attrs {
				prev[c] = v
			}
			continue
		}
		table[k] = attrs
	}
	t.table = table
	t.stamp = fileStamp{st.ModTime(), st.Size()}
	t.cache = map[uint64]*cached{}
	t.ncache = 0
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseCSV(data []byte) ([]map[string]string, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.TrimLeadingSpace = true
	r.Comment = '#'
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if !contains(header, "asset") && !contains(header, "tag") {
		return nil, errors.New("the header has neither an asset nor a tag column")
	}
	var rows []map[string]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		row := make(map[string]string, len(header))
		for i, h := range header {
			if i < len(rec) {
				row[h] = strings.TrimSpace(rec[i])
			}
		}
		rows = append(rows, row)
	}
}

func parseJSON(data []byte) ([]map[string]string, error) {
	var items []map[string]any
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("want an array of objects: %w", err)
	}
	rows := make([]map[string]string, 0, len(items))
	for i, it := range items {
		row := make(map[string]string, len(it))
		for k, v := range it {
			switch x := v.(type) {
			case nil:
			case string:
				row[k] = x
			case float64, bool:
				row[k] = fmt.Sprint(x)
			default:
				return nil, fmt.Errorf("item %d: %s is not a string, number or bool", i+1, k)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// maybeReload checks the file at most every reload_interval.
func (t *Transform) maybeReload() {
	if t.cfg.ReloadInterval <= 0 {
		return
	}
	now := t.now()
	if now-t.checked < int64(t.cfg.ReloadInterval) {
		return
	}
	t.checked = now
	st, err := os.Stat(t.cfg.Path)
	if err != nil {
		t.log().Warn("lookup table unreadable; keeping the loaded one", "file", t.cfg.Path, "err", err)
		return
	}
	if (fileStamp{st.ModTime(), st.Size()}) == t.stamp {
		return
	}
	if err := t.reload(); err != nil {
		t.stamp = fileStamp{st.ModTime(), st.Size()} // log a bad version once
		t.log().Warn("lookup table reload failed; keeping the loaded one", "file", t.cfg.Path, "err", err)
		return
	}
	t.log().Info("lookup table reloaded", "file", t.cfg.Path, "rows", len(t.table))
}

// resolve merges the rows matching (asset, tag): asset-only, then tag-only,
// then the exact pair, the more specific winning.
func (t *Transform) resolve(asset, tag string) map[string]string {
	var out map[string]string
	for _, k := range [...]key{{asset, ""}, {"", tag}, {asset, tag}} {
		if k.asset == "" && k.tag == "" {
			continue
		}
		m, ok := t.table[k]
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(m))
		}
		for c, v := range m {
			out[c] = v
		}
	}
	return out
}

func (t *Transform) attrsFor(p *engine.Point) map[string]string {
	h := bits.RotateLeft64(maphash.String(t.seed, p.Asset), 17) ^ maphash.String(t.seed, p.Tag)
	for c := t.cache[h]; c != nil; c = c.next {
		if c.tag == p.Tag && c.asset == p.Asset {
			return c.attrs
		}
	}
	if t.ncache >= maxCache {
		clear(t.cache)
		t.ncache = 0
	}
	c := &cached{asset: p.Asset, tag: p.Tag, attrs: t.resolve(p.Asset, p.Tag), next: t.cache[h]}
	t.cache[h] = c
	t.ncache++
	return c.attrs
}

// Process enriches in place.
func (t *Transform) Process(ctx context.Context, in []engine.Point) []engine.Point {
	t.maybeReload()
	out := in[:0]
	missed := 0
	for i := range in {
		p := &in[i]
		m := t.attrsFor(p)
		if m == nil {
			if t.cfg.OnMiss == "drop" {
				missed++
				continue
			}
		} else {
			p.Attrs = merge(p.Attrs, m, t.cfg.Overwrite)
		}
		out = append(out, *p)
	}
	if missed > 0 {
		t.env.Drop(missed, "lookup_miss")
	}
	return out
}

// merge returns the table's map itself when the point has no attrs (shared,
// never written), or a new map.
func merge(own, table map[string]string, overwrite bool) map[string]string {
	if len(own) == 0 {
		return table
	}
	out := make(map[string]string, len(own)+len(table))
	if overwrite {
		for k, v := range own {
			out[k] = v
		}
		for k, v := range table {
			out[k] = v
		}
		return out
	}
	for k, v := range table {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// Rows lists the table's keys, sorted (for tests and status).
func (t *Transform) Rows() []string {
	var out []string
	for k := range t.table {
		out = append(out, k.asset+"/"+k.tag)
	}
	sort.Strings(out)
	return out
}
