package mqtt

import (
	"errors"
	"github.com/flowd/flowd/codecs"
	"strings"
	"testing"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
)

func decoder(t testing.TB, c Config) *Decoder {
	t.Helper()
	if c.Format == "" {
		c.Format = "json"
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	d, err := newDecoder(&c, codecs.All())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var now = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()

func TestDecodeJSONShapes(t *testing.T) {
	d := decoder(t, Config{AssetExpr: engine.Expr{Src: "topic[1]"}, TagExpr: engine.Expr{Src: "topic[2]"}})
	cases := []struct {
		name, topic, payload string
		want                 []string // asset/tag=value quality ts
	}{
		{"point", "plant/line1/x", `{"tag":"temp","value":21.5,"ts":"2026-11-22T10:00:00.5Z"}`,
			[]string{"line1/temp=21.5 good 2026-11-22T10:00:00.5Z"}},
		{"point with asset", "plant/line1/x", `{"asset":"a9","tag":"t","value":3,"quality":"bad"}`,
			[]string{"a9/t=3 bad 2026-11-22T10:00:00Z"}},
		{"value only takes tag from topic", "plant/line2/pressure", `{"value":true}`,
			[]string{"line2/pressure=true good 2026-11-22T10:00:00Z"}},
		{"array", "plant/l/x", `[{"tag":"a","value":1},{"tag":"b","value":"on"}]`,
			[]string{"l/a=1 good 2026-11-22T10:00:00Z", "l/b=on good 2026-11-22T10:00:00Z"}},
		{"gateway tag map", "plant/l3/x", `{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z","StatusCode":{"Code":1073741824}}}`,
			[]string{"l3/Temp=21.5 uncertain 2026-11-22T09:00:00Z"}},
		{"flat tag map", "plant/l3/x", `{"Speed":12}`,
			[]string{"l3/Speed=12 good 2026-11-22T10:00:00Z"}},
		{"bare scalar", "plant/l4/level", `42.25`,
			[]string{"l4/level=42.25 good 2026-11-22T10:00:00Z"}},
		{"unix ms ts", "plant/l/x", `{"tag":"a","value":null,"ts":1763805600000}`,
			[]string{"l/a=null good 2025-11-22T10:00:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pts, err := d.Decode(nil, c.topic, []byte(c.payload), now)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pts {
				got = append(got, p.Asset+"/"+p.Tag+"="+p.Value.String()+" "+p.Quality.String()+" "+p.Time().Format(time.RFC3339Nano))
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	d := decoder(t, Config{MaxPayload: 1000})
	for name, payload := range map[string]string{
		"truncated":      `{"tag":"a","value":`,
		"garbage":        `hello`,
		"object value":   `{"tag":"a","value":{"x":1}}`,
		"array value":    `{"tag":"a","value":[1]}`,
		"numeric tag":    `{"tag":5,"value":1}`,
		"no tag":         `{"value":1}`,
		"bad ts":         `{"tag":"a","value":1,"ts":"noon"}`,
		"bad quality":    `{"tag":"a","value":1,"quality":"great"}`,
		"empty":          ``,
		"empty array":    `[]`,
		"bad array item": `[{"tag":"a","value":1},{"tag":"b","value":{}}]`,
		"tag map object": `{"T":{"Value":{"a":1}}}`,
		"too large":      `{"tag":"a","value":"` + strings.Repeat("x", 1000) + `"}`,
		// A point object without tag and value is no tag map of "asset" and "quality".
		"no tag no value":  `{"asset":"a1","quality":"good"}`,
		"only ts":          `{"ts":"2026-11-22T10:00:00Z","attrs":{"k":"v"}}`,
		"year 9999":        `{"tag":"a","value":1,"ts":"9999-12-31T23:59:59Z"}`,
		"year 1500":        `{"tag":"a","value":1,"ts":"1500-01-01T00:00:00Z"}`,
		"ms overflow":      `{"tag":"a","value":1,"ts":1e20}`,
		"gateway ts range": `{"T":{"Value":1,"SourceTimestamp":"9999-12-31T23:59:59Z"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			pts, err := d.Decode(make([]engine.Point, 0, 4), "t/x", []byte(payload), now)
			if err == nil {
				t.Fatalf("no error, points %+v", pts)
			}
			if len(pts) != 0 {
				t.Errorf("points left behind after an error: %d", len(pts))
			}
		})
	}
	_, err := d.Decode(nil, "t", []byte(strings.Repeat(" ", 2000)), now)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("want ErrTooLarge, got %v", err)
	}
}

func TestDecodeRawAndMap(t *testing.T) {
	raw := decoder(t, Config{Format: "raw", Asset: "gw1"})
	pts, err := raw.Decode(nil, "dev/7/status", []byte("running"), now)
	if err != nil || len(pts) != 1 || pts[0].Tag != "dev/7/status" || pts[0].Asset != "gw1" || pts[0].Value.String() != "running" {
		t.Fatalf("raw: %+v %v", pts, err)
	}
	m := decoder(t, Config{Format: "map", Map: map[string]engine.Expr{
		"asset": {Src: "'site-' + topic[1]"},
		"tag":   {Src: "payload.sensor.name"},
		"value": {Src: "payload.sensor.reading"},
		"ts":    {Src: "payload.time"},
	}})
	pts, err = m.Decode(nil, "plant/north/x", []byte(`{"sensor":{"name":"flow","reading":12.5},"time":"2026-11-22T08:00:00Z"}`), now)
	if err != nil || len(pts) != 1 {
		t.Fatalf("map: %+v %v", pts, err)
	}
	p := pts[0]
	if p.Asset != "site-north" || p.Tag != "flow" || p.Value.String() != "12.5" || p.Time().Hour() != 8 {
		t.Errorf("map: %+v", p)
	}
	if _, err := m.Decode(nil, "plant/north/x", []byte(`{"sensor":{"name":"flow"}}`), now); err == nil {
		t.Error("map: a missing value field should be an error")
	}
	if _, err := m.Decode(nil, "plant/north/x", []byte(`{"sensor":{"name":"flow","reading":[1]}}`), now); err == nil {
		t.Error("map: an array value should be an error")
	}
	for _, bad := range []string{
		`{"sensor":{"name":{"x":1},"reading":1}}`, // an object as the tag
		`{"sensor":{"name":["a"],"reading":1}}`,
		`{"sensor":{"name":"flow","reading":1},"time":1e20}`, // out of range
		`{"sensor":{"name":"flow","reading":1},"time":"9999-12-31T23:59:59Z"}`,
	} {
		if pts, err := m.Decode(nil, "plant/north/x", []byte(bad), now); err == nil {
			t.Errorf("map: %s decoded to %+v", bad, pts)
		}
	}
	pts, err = m.Decode(nil, "plant/north/x", []byte(`{"sensor":{"name":"flow","reading":1},"time":1700000000001}`), now)
	if err != nil || pts[0].Time().Format(time.RFC3339Nano) != "2023-11-14T22:13:20.001Z" {
		t.Errorf("map: ms timestamp: %+v %v", pts, err)
	}
}

// Millisecond timestamps in the json format are exact (integer arithmetic).
func TestDecodeMillisExact(t *testing.T) {
	d := decoder(t, Config{})
	for payload, want := range map[string]string{
		`{"tag":"a","value":1,"ts":1700000000001}`:                         "2023-11-14T22:13:20.001Z",
		`{"tag":"a","value":1,"ts":1700000000000.5}`:                       "2023-11-14T22:13:20.0005Z",
		`{"T":{"Value":1,"SourceTimestamp":1700000000001}}`:                "2023-11-14T22:13:20.001Z",
		`[{"tag":"a","value":1,"ts":1700000000123},{"tag":"b","value":2}]`: "2023-11-14T22:13:20.123Z",
	} {
		pts, err := d.Decode(nil, "t", []byte(payload), now)
		if err != nil || pts[0].Time().Format(time.RFC3339Nano) != want {
			t.Errorf("%s: %+v %v, want ts %s", payload, pts, err, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() Config {
		return Config{Connection: mqttc.Connection{Broker: "mqtt://127.0.0.1:1883", SessionExpiry: time.Hour, KeepAlive: 30 * time.Second},
			Topics: []string{"a/#"}, QoS: 1, Connections: 1, ReceiveMaximum: 100, Batching: engine.Batching{BatchSize: 10}, Format: "json"}
	}
	for field, mutate := range map[string]func(*Config){
		"broker":          func(c *Config) { c.Broker = "http://x" },
		"topics":          func(c *Config) { c.Topics = nil },
		"qos":             func(c *Config) { c.QoS = 3 },
		"connections":     func(c *Config) { c.Connections = 2 },
		"receive_maximum": func(c *Config) { c.ReceiveMaximum = 0 },
		"asset_expr":      func(c *Config) { c.AssetExpr = engine.Expr{Src: "asset + "} },
		"tag_expr":        func(c *Config) { c.TagExpr = engine.Expr{Src: "payload.x"} },
		"map":             func(c *Config) { c.Format = "map" },
		"tls.ca_file":     func(c *Config) { c.Broker = "mqtts://h:8883"; c.TLS = &mqttc.TLS{CAFile: "/nonexistent"} },
	} {
		c := base()
		mutate(&c)
		_, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	c := base()
	if _, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"tag":"a","value":1.5,"ts":"2026-11-22T10:00:00Z"}`,
		`[{"tag":"a","value":1},{"tag":"b","value":"x","quality":"bad"}]`,
		`{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z","StatusCode":0}}`,
		`{"value":true}`, `42`, `"s"`, `null`, `{`, `[{]`, `{"tag":"a","value":1e999}`,
		`{"tag":"a","value":1,"ts":-9999999999999999999}`, `{"T":{"Value":1,"StatusCode":{"Code":-1}}}`,
	} {
		f.Add("plant/line1/temp", []byte(s))
	}
	dj := decoder(f, Config{AssetExpr: engine.Expr{Src: "topic[1]"}, TagExpr: engine.Expr{Src: "topic[2]"}})
	dm := decoder(f, Config{Format: "map", Map: map[string]engine.Expr{"tag": {Src: "payload.t"}, "value": {Src: "payload.v"}, "ts": {Src: "payload.ts"}}})
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, d := range []*Decoder{dj, dm} {
			pts, err := d.Decode(nil, topic, payload, now)
			if err != nil && len(pts) != 0 {
				t.Fatalf("points returned with an error")
			}
			for _, p := range pts {
				if p.Tag == "" {
					t.Fatalf("point without a tag from %q", payload)
				}
			}
		}
	})
}

func BenchmarkDecodePoint(b *testing.B) {
	d := decoder(b, Config{AssetExpr: engine.Expr{Src: "topic[1]"}})
	payload := []byte(`{"asset":"c1-asset3","tag":"tag17","value":48.123,"quality":"good","ts":"2026-11-22T10:00:00.123Z","attrs":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}`)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var err error
		if dst, err = d.Decode(dst[:0], "sim/1/c1-asset3", payload, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTagMap(b *testing.B) {
	d := decoder(b, Config{AssetExpr: engine.Expr{Src: "topic[1]"}})
	payload := []byte(`{"Temp":{"Value":21.5,"SourceTimestamp":"2026-11-22T09:00:00Z"},"Pressure":{"Value":1.013,"SourceTimestamp":"2026-11-22T09:00:00Z"},"Running":{"Value":true,"SourceTimestamp":"2026-11-22T09:00:00Z"}}`)
	dst := make([]engine.Point, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = d.Decode(dst[:0], "plant/line1", payload, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTopicExprs decodes a bare value whose asset and tag come
// from topic levels: the expressions run once per message.
func BenchmarkDecodeTopicExprs(b *testing.B) {
	d := decoder(b, Config{AssetExpr: engine.Expr{Src: "'site-' + topic[1]"}, TagExpr: engine.Expr{Src: "topic[2]"}})
	payload := []byte(`21.5`)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = d.Decode(dst[:0], "plant/line1/temperature", payload, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMap(b *testing.B) {
	d := decoder(b, Config{Format: "map", Map: map[string]engine.Expr{
		"asset": {Src: "topic[1]"},
		"tag":   {Src: "payload.sensor.name"},
		"value": {Src: "payload.sensor.reading"},
		"ts":    {Src: "payload.time"},
	}})
	payload := []byte(`{"sensor":{"name":"flow","reading":12.5},"time":"2026-11-22T08:00:00Z"}`)
	dst := make([]engine.Point, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = d.Decode(dst[:0], "plant/north/x", payload, now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeExpressions(t *testing.T) {
	d := decoder(t, Config{AssetExpr: engine.Expr{Src: "upper(topic[1])"}, TagExpr: engine.Expr{Src: "join(topic[2:], '.')"}})
	pts, err := d.Decode(nil, "plant/line1/motor/speed", []byte(`12`), now)
	if err != nil || len(pts) != 1 || pts[0].Asset != "LINE1" || pts[0].Tag != "motor.speed" {
		t.Fatalf("VM expressions: %+v %v", pts, err)
	}
	d = decoder(t, Config{AssetExpr: engine.Expr{Src: "topic[-2]"}, TagExpr: engine.Expr{Src: "topic[3]"}})
	pts, err = d.Decode(nil, "a/b/c/d", []byte(`1`), now)
	if err != nil || pts[0].Asset != "c" || pts[0].Tag != "d" {
		t.Fatalf("negative level: %+v %v", pts, err)
	}
	// A level the topic does not have rejects the message with the attribute named.
	if _, err := d.Decode(nil, "a/b", []byte(`1`), now); err == nil || !strings.Contains(err.Error(), "tag_expr") {
		t.Errorf("missing level: %v", err)
	}
	m := decoder(t, Config{Format: "map", Map: map[string]engine.Expr{
		"tag":     {Src: "payload.name ?? topic[1]"},
		"value":   {Src: "payload.raw * 0.5"},
		"quality": {Src: "payload.ok ? 'good' : 'bad'"},
		"ts":      {Src: "payload.t"},
	}})
	pts, err = m.Decode(nil, "dev/pump7", []byte(`{"raw":41,"ok":false,"t":1763805600000}`), now)
	if err != nil || len(pts) != 1 {
		t.Fatalf("map: %+v %v", pts, err)
	}
	p := pts[0]
	if p.Tag != "pump7" || p.Value.String() != "20.5" || p.Quality != engine.Bad || p.Time().Year() != 2025 {
		t.Errorf("map: %+v", p)
	}
	// An int times a float is a float.
	pts, err = m.Decode(nil, "dev/pump7", []byte(`{"name":"n","raw":4,"ok":true}`), now)
	if err != nil || pts[0].Value.Kind() != engine.KindFloat {
		t.Errorf("map: %+v %v", pts, err)
	}
	i := decoder(t, Config{Format: "map", Map: map[string]engine.Expr{"tag": {Src: "'count'"}, "value": {Src: "payload.n + 1"}}})
	pts, err = i.Decode(nil, "x", []byte(`{"n":41}`), now)
	if err != nil || pts[0].Value.Kind() != engine.KindInt || pts[0].Value.String() != "42" {
		t.Errorf("int arithmetic: %+v %v", pts, err)
	}
	if _, err := i.Decode(nil, "x", []byte(`{"n":"a"}`), now); err == nil {
		t.Error("string + int should be an error")
	}
	if _, err := i.Decode(nil, "x", []byte(`null`), now); err == nil {
		t.Error("a null payload should be an error")
	}
}

// Compile errors name the attribute and point at the column in the expression.
func TestExprErrorPositions(t *testing.T) {
	for _, c := range []struct {
		cfg    Config
		field  string
		offset int
	}{
		{Config{AssetExpr: engine.Expr{Src: "'plant-' + topc[1]"}}, "asset_expr", 11},
		{Config{TagExpr: engine.Expr{Src: "topic[1] +"}}, "tag_expr", 9},
		{Config{TagExpr: engine.Expr{Src: "topic"}}, "tag_expr", 0},
		{Config{TagExpr: engine.Expr{Src: "payload.x"}}, "tag_expr", 0},
		{Config{Format: "map", Map: map[string]engine.Expr{"value": {Src: "payload.a + nope"}}}, "map.value", 12},
	} {
		c.cfg.Format = orDefault(c.cfg.Format, "json")
		_, err := newDecoder(&c.cfg, codecs.All())
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Offset != c.offset || fe.Expr == nil {
			t.Errorf("%s: got %#v (%v), want field %s offset %d", c.field, fe, err, c.field, c.offset)
		}
	}
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
