package main

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/config"
)

// Random attribute values for every registered component go through the
// loader: whatever the values, validation ends in diagnostics or a config,
// never in a panic, and no constructor needs the loader's panic guard.
func TestValidateRandomAttributesNeverPanic(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // relative paths in random values land here
	reg := registry()
	r := rand.New(rand.NewPCG(15, 13))
	rounds := 60
	if testing.Short() {
		rounds = 10
	}
	for _, spec := range reg.All() {
		fields := config.Fields(spec.ConfigType())
		built := 0 // rounds that reached the constructor
		for round := 0; round < rounds; round++ {
			var body strings.Builder
			// Odd rounds set a few attributes, so that most get past the
			// decoder; even rounds set many at once.
			keep := 1.0 - 1.0/3
			if round%2 == 1 {
				keep = 3.0 / float64(len(fields)+1)
			}
			randomBody(r, &body, fields, dir, "    ", 0, keep)
			if spec.Kind == engine.KindSink && r.IntN(2) == 0 {
				fmt.Fprintf(&body, "    buffer {\n      max_points = %d\n      max_size = %s\n    }\n",
					randomInts[r.IntN(len(randomInts))], strconv.Quote(randomSizes[r.IntN(len(randomSizes))]))
			}
			src := pipelineAround(spec.Kind, spec.Type, body.String())
			l := config.NewLoader(config.Options{Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				LookupEnv: func(string) (string, bool) { return "", false }})
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s %s: panic %v with\n%s", spec.Kind, spec.Type, p, src)
					}
				}()
				_, diags := l.LoadSource("p.hcl", []byte(src))
				if !diags.HasErrors() {
					built++
				}
				for _, d := range diags {
					if d.Summary == fmt.Sprintf("Invalid %s \"x\"", spec.Kind) {
						built++
						break
					}
				}
				for _, d := range diags {
					if strings.Contains(d.Detail, "cannot be built with this configuration") {
						t.Errorf("%s %s: the constructor panicked: %s\n%s", spec.Kind, spec.Type, d.Detail, src)
					}
				}
			}()
		}
		// Random values that never get past the decoder would test nothing.
		if built == 0 {
			t.Errorf("%s %s: no round reached the constructor", spec.Kind, spec.Type)
		}
	}
}

// randomBody writes random attributes, and nested blocks with theirs (a
// device with tags, a tls block...), two levels deep.
func randomBody(r *rand.Rand, b *strings.Builder, fields []config.Field, dir, indent string, depth int, keep float64) {
	for _, f := range fields {
		if f.Label || (r.Float64() >= keep && !f.Required) {
			continue
		}
		if !f.Block {
			fmt.Fprintf(b, "%s%s = %s\n", indent, f.Name, randomValue(r, f, dir))
			continue
		}
		if depth >= 2 {
			continue
		}
		t := f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			continue
		}
		inner := config.Fields(t)
		for n := 1 + r.IntN(2); n > 0; n-- {
			label := ""
			for _, g := range inner {
				if g.Label {
					label = strconv.Quote([]string{"a", "b", ""}[r.IntN(3)]) + " "
				}
			}
			fmt.Fprintf(b, "%s%s %s{\n", indent, f.Name, label)
			randomBody(r, b, inner, dir, indent+"  ", depth+1, 2.0/3)
			fmt.Fprintf(b, "%s}\n", indent)
		}
	}
}

func pipelineAround(kind engine.ComponentKind, typ, body string) string {
	switch kind {
	case engine.KindSource:
		return fmt.Sprintf("pipeline \"p\" {\n  source %q \"x\" {\n%s  }\n  sink \"discard\" \"d\" {\n    inputs = [source.x]\n  }\n}\n", typ, body)
	case engine.KindTransform:
		return fmt.Sprintf("pipeline \"p\" {\n  source \"sim\" \"s\" {}\n  transform %q \"x\" {\n    inputs = [source.s]\n%s  }\n  sink \"discard\" \"d\" {\n    inputs = [transform.x]\n  }\n}\n", typ, body)
	default:
		return fmt.Sprintf("pipeline \"p\" {\n  source \"sim\" \"s\" {}\n  sink %q \"x\" {\n    inputs = [source.s]\n%s  }\n}\n", typ, body)
	}
}

var (
	randomInts = []int64{-1 << 63, -1e12, -1, 0, 1, 2, 3, 64, 125, 126, 2000, 65535, 65536, 1e6, 1e7 + 1, 1e12, 1<<63 - 1}
	randomStrs = []string{"", "x", "a:1", "127.0.0.1:0", "mqtt://127.0.0.1:1", "mqtt://u:p@127.0.0.1:1", "/", "((", "asset + '/' + tag",
		"topic[1]", "ns=2;s=A", "i=85", "opc.tcp://127.0.0.1:4840", "*[", "Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=v", "\x7f", strings.Repeat("a", 70000)}
	randomDurs  = []string{"0s", "-1s", "1ns", "1ms", "1s", "1m", "90s", "2562047h", "100000h"}
	randomSizes = []string{"0", "-1", "1", "1KiB", "1MiB", "1GiB", "1TiB", "1000000000000"}
)

// randomValue is an HCL expression of roughly the field's type (and at times
// of another type, which the decoder must refuse cleanly).
func randomValue(r *rand.Rand, f config.Field, dir string) string {
	if r.IntN(10) == 0 {
		return strconv.Quote(randomStrs[r.IntN(len(randomStrs))])
	}
	if len(f.Enum) > 0 && r.IntN(4) != 0 {
		return strconv.Quote(f.Enum[r.IntN(len(f.Enum))])
	}
	if len(f.Schemes) > 0 && f.Type.Kind() == reflect.String && r.IntN(4) != 0 {
		return strconv.Quote(f.Schemes[r.IntN(len(f.Schemes))] + "://127.0.0.1:1")
	}
	str := func() string {
		if r.IntN(4) == 0 {
			return strconv.Quote(dir + "/f" + strconv.Itoa(r.IntN(3)))
		}
		return strconv.Quote(randomStrs[r.IntN(len(randomStrs))])
	}
	t := f.Type
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return strconv.Quote(randomDurs[r.IntN(len(randomDurs))])
	case t == reflect.TypeFor[engine.Size]():
		return strconv.Quote(randomSizes[r.IntN(len(randomSizes))])
	case t == reflect.TypeFor[engine.Expr]():
		return str()
	}
	switch t.Kind() {
	case reflect.Bool:
		return strconv.FormatBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8,
		reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		return strconv.FormatInt(randomInts[r.IntN(len(randomInts))], 10)
	case reflect.Float32, reflect.Float64:
		return []string{"-1", "0", "0.5", "1", "2", "1e300", "-1e300"}[r.IntN(7)]
	case reflect.String:
		return str()
	case reflect.Slice:
		n := r.IntN(3)
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, randomValue(r, config.Field{Name: f.Name, Type: t.Elem()}, dir))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		if r.IntN(2) == 0 {
			return "{}"
		}
		return "{ asset = " + str() + ", value = " + str() + " }"
	}
	return str()
}
