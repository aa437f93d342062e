package payload

import (
	"errors"
	"testing"
	"time"

	"github.com/flowd/flowd/codecs"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
)

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()

// uplink is a ChirpStack v4 uplink event with a codec-decoded object.
const uplink = `{"deduplicationId":"3ac7e3c4","time":"2026-11-22T09:59:58.5Z",
 "deviceInfo":{"deviceName":"meter-000042","devEui":"0101010101010101","tags":{"site":"north"}},
 "fCnt":10,"fPort":1,"data":"AQID","object":{"energy_kwh":1234.5,"voltage":231,"power_w":880}}`

func TestPathSubject(t *testing.T) {
	d, err := New(Options{Codecs: codecs.All(), Format: "map", Subject: "path", Map: map[string]engine.Expr{
		"asset": {Src: "path[-1] + '/' + payload.deviceInfo.deviceName"},
		"tag":   {Src: "'energy_kwh'"},
		"value": {Src: "payload.object.energy_kwh"},
		"ts":    {Src: "payload.time"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := d.Decode(nil, "uplink/north", []byte(uplink), now)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Point{Asset: "north/meter-000042", Tag: "energy_kwh", Value: engine.Float(1234.5),
		TS: time.Date(2026, 11, 22, 9, 59, 58, 5e8, time.UTC).UnixNano()}
	if len(pts) != 1 || pts[0].Asset != want.Asset || pts[0].Tag != want.Tag || pts[0].Value != want.Value || pts[0].TS != want.TS {
		t.Fatalf("got %+v, want %+v", pts, want)
	}
	// topic is not in scope for a path subject, and the reverse.
	if _, err := New(Options{Codecs: codecs.All(), Format: "json", Subject: "path", TagExpr: engine.Expr{Src: "topic[1]"}}); err == nil {
		t.Error("topic compiled for a path subject")
	}
	if _, err := New(Options{Codecs: codecs.All(), Format: "json", Subject: "topic", TagExpr: engine.Expr{Src: "path[1]"}}); err == nil {
		t.Error("path compiled for a topic subject")
	}
	// Native form (no VM) for path levels too.
	d, err = New(Options{Codecs: codecs.All(), Format: "json", Subject: "path", AssetExpr: engine.Expr{Src: "'site-' + path[1]"}})
	if err != nil {
		t.Fatal(err)
	}
	pts, err = d.Decode(nil, "ingest/north", []byte(`{"tag":"a","value":1}`), now)
	if err != nil || pts[0].Asset != "site-north" {
		t.Fatalf("got %+v, %v", pts, err)
	}
	if _, err = d.Decode(nil, "ingest", []byte(`{"tag":"a","value":1}`), now); err == nil || err.Error() != `asset_expr: path "ingest" has no level 1` {
		t.Errorf("missing level: %v", err)
	}
}

func TestNoSubject(t *testing.T) {
	if _, err := New(Options{Codecs: codecs.All(), Format: "raw"}); err == nil {
		t.Error("raw without a subject or tag accepted")
	}
	var fe *engine.FieldError
	if _, err := New(Options{Codecs: codecs.All(), Format: "json", TagExpr: engine.Expr{Src: "topic[0]"}}); !errors.As(err, &fe) || fe.Field != "tag_expr" {
		t.Errorf("tag_expr over a missing subject: %v", err)
	}
	d, err := New(Options{Codecs: codecs.All(), Format: "raw", Tag: "line", Asset: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := d.Decode(nil, "", []byte("hello"), now)
	if err != nil || len(pts) != 1 || pts[0].Tag != "line" || pts[0].Asset != "gw1" || pts[0].Value != engine.String("hello") {
		t.Fatalf("raw: %+v %v", pts, err)
	}
	d, err = New(Options{Codecs: codecs.All(), Format: "map", Map: map[string]engine.Expr{"tag": {Src: "payload.n"}, "value": {Src: "payload.v * 2"}}})
	if err != nil {
		t.Fatal(err)
	}
	pts, err = d.Decode(nil, "", []byte(`{"n":"x","v":21}`), now)
	if err != nil || len(pts) != 1 || pts[0].Tag != "x" || pts[0].Value != engine.Int(42) || pts[0].TS != now {
		t.Fatalf("map: %+v %v", pts, err)
	}
}

func BenchmarkDecodeUplinkMap(b *testing.B) {
	d, err := New(Options{Codecs: codecs.All(), Format: "map", Subject: "path", Map: map[string]engine.Expr{
		"asset": {Src: "payload.deviceInfo.deviceName"},
		"tag":   {Src: "'energy_kwh'"},
		"value": {Src: "payload.object.energy_kwh"},
		"ts":    {Src: "payload.time"},
	}})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(uplink)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if dst, err = d.Decode(dst[:0], "uplink", body, now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMapValues(t *testing.T) {
	m := map[string]engine.Expr{
		"asset":  {Src: "payload.deviceInfo.deviceName"},
		"values": {Src: "payload.object"},
		"ts":     {Src: "payload.time"},
	}
	// Only where the source allows it (MQTT keeps its map as it was).
	if _, err := New(Options{Codecs: codecs.All(), Format: "map", Subject: "topic", Map: m}); err == nil {
		t.Fatal("values accepted without Options.Values")
	}
	d, err := New(Options{Codecs: codecs.All(), Format: "map", Subject: "path", Map: m, Values: true})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := d.Decode(nil, "uplink", []byte(uplink), now)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 22, 9, 59, 58, 5e8, time.UTC).UnixNano()
	want := []engine.Point{
		{Asset: "meter-000042", Tag: "energy_kwh", Value: engine.Float(1234.5), TS: ts},
		{Asset: "meter-000042", Tag: "power_w", Value: engine.Int(880), TS: ts},
		{Asset: "meter-000042", Tag: "voltage", Value: engine.Int(231), TS: ts},
	}
	if len(pts) != len(want) {
		t.Fatalf("got %+v", pts)
	}
	for i := range want {
		if pts[i].Asset != want[i].Asset || pts[i].Tag != want[i].Tag || pts[i].Value != want[i].Value || pts[i].TS != want[i].TS {
			t.Errorf("point %d: got %+v, want %+v", i, pts[i], want[i])
		}
	}
	for _, bad := range []string{`{"object":null}`, `{"object":{}}`, `{"object":5}`, `{"object":{"a":{"b":1}}}`} {
		if pts, err := d.Decode(nil, "uplink", []byte(bad), now); err == nil || len(pts) != 0 {
			t.Errorf("%s: got %v, %v", bad, pts, err)
		}
	}
	if _, err := New(Options{Codecs: codecs.All(), Format: "map", Values: true, Map: map[string]engine.Expr{"value": {Src: "1"}, "values": {Src: "payload"}}}); err == nil {
		t.Error("value and values together accepted")
	}
}

// TestAssetJSONRoundTrip decodes what the sinks' asset_json encoder
// (engine/codec) writes and gets the points back.
func TestAssetJSONRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 22, 9, 0, 0, 123_000_000, time.UTC).UnixNano()
	in := []engine.Point{
		{Asset: "line1", Tag: "temp", Value: engine.Float(21.5), Quality: engine.Good, TS: ts},
		{Asset: "line1", Tag: "count", Value: engine.Int(42), Quality: engine.Uncertain, TS: ts + 1_000_000},
		{Asset: "line1", Tag: "state", Value: engine.String("run"), Quality: engine.Bad, TS: ts + 2_000_000},
	}
	rec := codec.AppendAssetJSON(nil, "line1", in)
	d, err := New(Options{Codecs: codecs.All(), Format: "json", Subject: "topic"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Decode(nil, "t", rec, now)
	if err != nil {
		t.Fatalf("%v: %s", err, rec)
	}
	want := map[string]engine.Point{}
	for _, p := range in {
		want[p.Tag] = p
	}
	if len(out) != len(in) {
		t.Fatalf("%d points from %s", len(out), rec)
	}
	for _, p := range out {
		w := want[p.Tag]
		if p.Asset != w.Asset || !p.Value.Equal(w.Value) || p.Quality != w.Quality || p.TS != w.TS {
			t.Errorf("got %+v, want %+v", p, w)
		}
	}
	for _, bad := range []string{
		`{"asset":"a","points":{}}`,
		`{"asset":"a","points":{"t":{}}}`,
		`{"asset":"a","points":{"t":{"value":{"x":1}}}}`,
		`{"asset":"a","points":{"t":{"value":1,"tag":"other"}}}`,
		`{"asset":"a","points":[1]}`,
		`{"asset":"a","points":{"t":{"value":1,"quality":"great"}}}`,
	} {
		if pts, err := d.Decode(nil, "t", []byte(bad), now); err == nil {
			t.Errorf("%s decoded to %+v", bad, pts)
		}
	}
}
