package sparkplug

import (
	"maps"
	"testing"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"google.golang.org/protobuf/proto"
)

// FuzzDecode feeds arbitrary payloads after a valid birth: every message
// either decodes into points with a tag or is rejected with a reason.
func FuzzDecode(f *testing.F) {
	var bm []*sproto.Payload_Metric
	for i, c := range allTypes() {
		m := mkMetric(c.name, uint64(i+1), c.dt)
		c.set(m)
		bm = append(bm, m)
	}
	b := birth(f, 0, 1, bm...)
	f.Add("NBIRTH", b)
	f.Add("NDATA", b[:len(b)/2])
	f.Add("NDATA", marshal(f, &sproto.Payload{Seq: proto.Uint64(1), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(3), Value: &sproto.Payload_Metric_IntValue{IntValue: 1}}}}))
	f.Add("NDEATH", marshal(f, &sproto.Payload{Metrics: []*sproto.Payload_Metric{bdSeqMetric(1, 0)}}))
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		d := NewDecoder(NewState(Options{}), nil)
		if _, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", b, 1); err != nil {
			t.Fatal(err)
		}
		pts, err := d.Decode(nil, "spBv1.0/g/"+typ+"/n", payload, 1)
		if err != nil {
			if len(pts) != 0 || err.Error() == "" {
				t.Fatalf("rejected with points %v or no reason", pts)
			}
			return
		}
		for _, p := range pts {
			if p.Tag == "" {
				t.Fatalf("point without a tag: %+v", p)
			}
		}
	})
}

// BenchmarkDecodeDData decodes DDATA messages of 20 metrics by alias; the
// metrics/s figure is per CPU-second of the benchmark's one goroutine.
func BenchmarkDecodeDData(b *testing.B) {
	d := NewDecoder(NewState(Options{NoSeqCheck: true}), nil)
	var bm, dm []*sproto.Payload_Metric
	for i := range 20 {
		m := mkMetric("tag"+string(rune('a'+i)), uint64(i+1), sproto.DataType_Double)
		m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: float64(i)}
		bm = append(bm, m)
		dm = append(dm, &sproto.Payload_Metric{Alias: proto.Uint64(uint64(i + 1)), Timestamp: proto.Uint64(uint64(T0)),
			Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: float64(i) * 1.5}})
	}
	if _, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(b, 0, 1), 1); err != nil {
		b.Fatal(err)
	}
	if _, err := d.Decode(nil, "spBv1.0/g/DBIRTH/n/dev", marshal(b, &sproto.Payload{Seq: proto.Uint64(1), Metrics: bm}), 1); err != nil {
		b.Fatal(err)
	}
	data := marshal(b, &sproto.Payload{Timestamp: proto.Uint64(uint64(T0)), Seq: proto.Uint64(2), Metrics: dm})
	pts := make([]engine.Point, 0, 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		var err error
		pts, err = d.Decode(pts[:0], "spBv1.0/g/DDATA/n/dev", data, 1)
		if err != nil || len(pts) != 20 {
			b.Fatal(err, len(pts))
		}
	}
	b.ReportMetric(float64(20*b.N)/b.Elapsed().Seconds(), "metrics/s")
}

// BenchmarkEdgeNodeData encodes batches of 100 points (5 devices × 20
// metrics) into DDATA messages, as the mqtt sink does.
func BenchmarkEdgeNodeData(b *testing.B) {
	e, _ := NewEdgeNode("g", "n")
	e.Connecting(0)
	pts := make([]engine.Point, 100)
	for i := range pts {
		pts[i] = engine.Point{Asset: "dev" + string(rune('a'+i/20)), Tag: "tag" + string(rune('a'+i%20)), Value: engine.Float(float64(i)), TS: T0 * 1e6}
	}
	e.Data(pts, T0*1e6) // births
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		msgs, _ := e.Data(pts, T0*1e6)
		if len(msgs) != 5 {
			b.Fatal(len(msgs))
		}
	}
	b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "metrics/s")
}

// FuzzWireMatchesProto decodes data messages with the wire-level reader and
// with the generated types: both accept or both reject, with equal points.
func FuzzWireMatchesProto(f *testing.F) {
	var bm []*sproto.Payload_Metric
	var dm []*sproto.Payload_Metric
	for i, c := range allTypes() {
		m := mkMetric(c.name, uint64(i+1), c.dt)
		c.set(m)
		bm = append(bm, m)
		x := &sproto.Payload_Metric{Alias: proto.Uint64(uint64(i + 1)), Timestamp: proto.Uint64(uint64(T0))}
		c.set(x)
		dm = append(dm, x)
	}
	birthMsg := marshal(f, &sproto.Payload{Seq: proto.Uint64(1), Metrics: bm})
	f.Add(marshal(f, &sproto.Payload{Seq: proto.Uint64(2), Timestamp: proto.Uint64(uint64(T0)), Metrics: dm}))
	f.Add(marshal(f, &sproto.Payload{Seq: proto.Uint64(2), Metrics: []*sproto.Payload_Metric{{Name: proto.String("i8"), Value: &sproto.Payload_Metric_IntValue{IntValue: 7},
		Properties: &sproto.Payload_PropertySet{Keys: []string{"Quality"}, Values: []*sproto.Payload_PropertyValue{{Value: &sproto.Payload_PropertyValue_IntValue{IntValue: 64}}}}}}}))
	f.Add(marshal(f, &sproto.Payload{Seq: proto.Uint64(2), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(3), Datatype: proto.Uint32(uint32(sproto.DataType_Template)),
		Value: &sproto.Payload_Metric_TemplateValue{TemplateValue: &sproto.Payload_Template{Version: proto.String("1")}}}}}))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var res [2][]engine.Point
		var errs [2]error
		for k := range 2 {
			d := NewDecoder(NewState(Options{}), nil)
			wireData := k == 0
			if _, err := d.decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 1), 1, wireData); err != nil {
				t.Fatal(err)
			}
			if _, err := d.decode(nil, "spBv1.0/g/DBIRTH/n/d", birthMsg, 1, wireData); err != nil {
				t.Fatal(err)
			}
			res[k], errs[k] = d.decode(nil, "spBv1.0/g/DDATA/n/d", payload, 1, wireData)
		}
		if (errs[0] == nil) != (errs[1] == nil) {
			t.Fatalf("wire: %v; proto: %v", errs[0], errs[1])
		}
		if len(res[0]) != len(res[1]) {
			t.Fatalf("wire %d points, proto %d", len(res[0]), len(res[1]))
		}
		for i := range res[0] {
			a, b := res[0][i], res[1][i]
			if a.Asset != b.Asset || a.Tag != b.Tag || !a.Value.Equal(b.Value) || a.Value.Kind() != b.Value.Kind() || a.Quality != b.Quality || a.Status != b.Status || a.TS != b.TS || !maps.Equal(a.Attrs, b.Attrs) {
				t.Fatalf("point %d: wire %+v, proto %+v", i, a, b)
			}
		}
	})
}
