package sparkplug

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/engine"
	"google.golang.org/protobuf/proto"
)

func mkMetric(name string, alias uint64, t sproto.DataType) *sproto.Payload_Metric {
	m := &sproto.Payload_Metric{Alias: proto.Uint64(alias), Datatype: dt(t)}
	if name != "" {
		m.Name = proto.String(name)
	}
	return m
}

func marshal(t testing.TB, pl *sproto.Payload) []byte {
	b, err := proto.Marshal(pl)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const T0 = int64(1_700_000_000_000) // ms

// every datatype with a value and the point value it must decode to
type typed struct {
	name string
	dt   sproto.DataType
	set  func(*sproto.Payload_Metric)
	want engine.Value
}

func le(n int, vals ...uint64) []byte {
	var b []byte
	for _, v := range vals {
		switch n {
		case 1:
			b = append(b, byte(v))
		case 2:
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case 8:
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	return b
}

func allTypes() []typed {
	iv := func(v uint32) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_IntValue{IntValue: v} }
	}
	lv := func(v uint64) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_LongValue{LongValue: v} }
	}
	bv := func(v []byte) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_BytesValue{BytesValue: v} }
	}
	sv := func(v string) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_StringValue{StringValue: v} }
	}
	m8 := int8(-5)
	m16 := int16(-300)
	m32 := int32(-70000)
	m64 := int64(math.MinInt64)
	return []typed{
		{"i8", sproto.DataType_Int8, iv(uint32(uint8(m8))), engine.Int(-5)},
		{"i16", sproto.DataType_Int16, iv(uint32(uint16(m16))), engine.Int(-300)},
		{"i32", sproto.DataType_Int32, iv(uint32(m32)), engine.Int(-70000)},
		{"i64", sproto.DataType_Int64, lv(uint64(m64)), engine.Int(math.MinInt64)},
		{"u8", sproto.DataType_UInt8, iv(255), engine.Int(255)},
		{"u16", sproto.DataType_UInt16, iv(65535), engine.Int(65535)},
		{"u32", sproto.DataType_UInt32, iv(math.MaxUint32), engine.Int(math.MaxUint32)},
		{"u64", sproto.DataType_UInt64, lv(math.MaxUint64), engine.Uint(math.MaxUint64)},
		{"u64small", sproto.DataType_UInt64, lv(42), engine.Int(42)},
		{"f32", sproto.DataType_Float, func(m *sproto.Payload_Metric) {
			m.Value = &sproto.Payload_Metric_FloatValue{FloatValue: 1.5}
		}, engine.Float(1.5)},
		{"f64", sproto.DataType_Double, func(m *sproto.Payload_Metric) {
			m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: -2.25e300}
		}, engine.Float(-2.25e300)},
		{"bool", sproto.DataType_Boolean, func(m *sproto.Payload_Metric) {
			m.Value = &sproto.Payload_Metric_BooleanValue{BooleanValue: true}
		}, engine.Bool(true)},
		{"str", sproto.DataType_String, sv("héllo \"x\""), engine.String("héllo \"x\"")},
		{"text", sproto.DataType_Text, sv("long"), engine.String("long")},
		{"uuid", sproto.DataType_UUID, sv("8d7a"), engine.String("8d7a")},
		{"dt", sproto.DataType_DateTime, lv(uint64(T0 + 123)), engine.String("2023-11-14T22:13:20.123Z")},
		{"bytes", sproto.DataType_Bytes, bv([]byte{1, 2, 255}), engine.String("AQL/")},
		{"i8a", sproto.DataType_Int8Array, bv(le(1, 0xff, 1)), engine.String("[-1,1]")},
		{"i16a", sproto.DataType_Int16Array, bv(le(2, 0xfffe, 2)), engine.String("[-2,2]")},
		{"i32a", sproto.DataType_Int32Array, bv(le(4, 0xfffffffd, 3)), engine.String("[-3,3]")},
		{"i64a", sproto.DataType_Int64Array, bv(le(8, math.MaxUint64, 4)), engine.String("[-1,4]")},
		{"u8a", sproto.DataType_UInt8Array, bv(le(1, 200)), engine.String("[200]")},
		{"u16a", sproto.DataType_UInt16Array, bv(le(2, 60000)), engine.String("[60000]")},
		{"u32a", sproto.DataType_UInt32Array, bv(le(4, 4000000000)), engine.String("[4000000000]")},
		{"u64a", sproto.DataType_UInt64Array, bv(le(8, math.MaxUint64)), engine.String("[18446744073709551615]")},
		{"fa", sproto.DataType_FloatArray, bv(le(4, uint64(math.Float32bits(0.5)))), engine.String("[0.5]")},
		{"da", sproto.DataType_DoubleArray, bv(le(8, math.Float64bits(-1.25))), engine.String("[-1.25]")},
		{"ba", sproto.DataType_BooleanArray, bv(append(le(4, 3), 0b1010_0000)), engine.String("[true,false,true]")},
		{"sa", sproto.DataType_StringArray, bv([]byte("ab\x00\x00c\x00")), engine.String(`["ab","","c"]`)},
		{"dta", sproto.DataType_DateTimeArray, bv(le(8, uint64(T0))), engine.String(`["2023-11-14T22:13:20.000Z"]`)},
		{"null", sproto.DataType_Double, func(m *sproto.Payload_Metric) { m.IsNull = proto.Bool(true) }, engine.Null()},
	}
}

func birth(t testing.TB, seq uint64, bdSeq uint64, ms ...*sproto.Payload_Metric) []byte {
	all := append([]*sproto.Payload_Metric{{Name: proto.String("bdSeq"), Datatype: dt(sproto.DataType_Int64), Value: &sproto.Payload_Metric_LongValue{LongValue: bdSeq}}}, ms...)
	return marshal(t, &sproto.Payload{Timestamp: proto.Uint64(uint64(T0)), Seq: proto.Uint64(seq), Metrics: all})
}

func byTag(pts []engine.Point) map[string]engine.Point {
	m := map[string]engine.Point{}
	for _, p := range pts {
		m[p.Asset+"|"+p.Tag] = p
	}
	return m
}

func TestEveryDatatypeByAliasAfterBirth(t *testing.T) {
	d := NewDecoder(NewState(Options{}), nil)
	var bm []*sproto.Payload_Metric
	for i, c := range allTypes() {
		m := mkMetric(c.name, uint64(i+1), c.dt)
		c.set(m)
		bm = append(bm, m)
	}
	pts, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 7, bm...), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != len(allTypes()) {
		t.Fatalf("birth gave %d points, want %d", len(pts), len(allTypes()))
	}
	// Data by alias only, no names and no datatypes, own timestamps.
	var dm []*sproto.Payload_Metric
	for i, c := range allTypes() {
		m := &sproto.Payload_Metric{Alias: proto.Uint64(uint64(i + 1)), Timestamp: proto.Uint64(uint64(T0 + int64(i)))}
		c.set(m)
		dm = append(dm, m)
	}
	pts, err = d.Decode(pts[:0], "spBv1.0/g/NDATA/n", marshal(t, &sproto.Payload{Seq: proto.Uint64(1), Metrics: dm}), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range allTypes() {
		p := pts[i]
		if p.Tag != c.name || p.Asset != "g/n" || !p.Value.Equal(c.want) || p.Value.Kind() != c.want.Kind() || p.Quality != engine.Good {
			t.Errorf("%s: got %s/%s %v (%s), want %v (%s)", c.name, p.Asset, p.Tag, p.Value, p.Value.Kind(), c.want, c.want.Kind())
		}
		if want := (T0 + int64(i)) * 1e6; p.TS != want {
			t.Errorf("%s: ts %d, want %d", c.name, p.TS, want)
		}
	}
}

func TestDataBeforeBirthAsksRebirthAndEmitsNothing(t *testing.T) {
	d := NewDecoder(NewState(Options{RebirthInterval: time.Hour}), nil)
	data := marshal(t, &sproto.Payload{Seq: proto.Uint64(3), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(1), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}}}})
	for i := range 2 {
		pts, err := d.Decode(nil, "spBv1.0/g/NDATA/n", data, 1)
		var re *RebirthError
		if len(pts) != 0 || !errors.As(err, &re) || re.Group != "g" || re.Node != "n" {
			t.Fatalf("got %v, %v", pts, err)
		}
		if re.Request != (i == 0) {
			t.Fatalf("attempt %d: request %v (one request per interval)", i, re.Request)
		}
	}
}

func TestUnknownAliasAndSeqGapRejected(t *testing.T) {
	d := NewDecoder(NewState(Options{}), nil)
	m := mkMetric("temp", 5, sproto.DataType_Double)
	m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}
	if _, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 1, m), 1); err != nil {
		t.Fatal(err)
	}
	bad := marshal(t, &sproto.Payload{Seq: proto.Uint64(1), Metrics: []*sproto.Payload_Metric{
		{Alias: proto.Uint64(5), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 2}},
		{Alias: proto.Uint64(6), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 3}}}})
	pts, err := d.Decode(nil, "spBv1.0/g/NDATA/n", bad, 1)
	var re *RebirthError
	if len(pts) != 0 || !errors.As(err, &re) || !strings.Contains(err.Error(), "unknown alias 6") {
		t.Fatalf("unknown alias: %v %v", pts, err)
	}
	gap := marshal(t, &sproto.Payload{Seq: proto.Uint64(5), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(5), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 2}}}})
	pts, err = d.Decode(nil, "spBv1.0/g/NDATA/n", gap, 1)
	if len(pts) != 0 || !errors.As(err, &re) || !strings.Contains(err.Error(), "sequence gap") {
		t.Fatalf("gap: %v %v", pts, err)
	}
	// After the gap the next in line is accepted again.
	ok := marshal(t, &sproto.Payload{Seq: proto.Uint64(6), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(5), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 4}}}})
	if pts, err = d.Decode(nil, "spBv1.0/g/NDATA/n", ok, 1); err != nil || len(pts) != 1 || !pts[0].Value.Equal(engine.Float(4)) {
		t.Fatalf("after gap: %v %v", pts, err)
	}
}

func TestDeathMarksBadAndStaleDeathIgnored(t *testing.T) {
	d := NewDecoder(NewState(Options{}), nil)
	m := mkMetric("temp", 1, sproto.DataType_Double)
	m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}
	if _, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 4, m), 1); err != nil {
		t.Fatal(err)
	}
	dm := mkMetric("speed", 2, sproto.DataType_Int32)
	dm.Value = &sproto.Payload_Metric_IntValue{IntValue: 3}
	if _, err := d.Decode(nil, "spBv1.0/g/DBIRTH/n/motor", marshal(t, &sproto.Payload{Seq: proto.Uint64(1), Metrics: []*sproto.Payload_Metric{dm}}), 1); err != nil {
		t.Fatal(err)
	}
	death := func(bd uint64) []byte {
		return marshal(t, &sproto.Payload{Timestamp: proto.Uint64(uint64(T0)), Metrics: []*sproto.Payload_Metric{bdSeqMetric(bd, 0)}})
	}
	if pts, err := d.Decode(nil, "spBv1.0/g/NDEATH/n", death(3), 1); err != nil || len(pts) != 0 {
		t.Fatalf("stale death: %v %v", pts, err)
	}
	pts, err := d.Decode(nil, "spBv1.0/g/NDEATH/n", death(4), 1)
	if err != nil {
		t.Fatal(err)
	}
	got := byTag(pts)
	if len(got) != 2 || got["g/n|temp"].Quality != engine.Bad || got["g/n/motor|speed"].Quality != engine.Bad || !got["g/n|temp"].Value.IsNull() {
		t.Fatalf("death: %+v", pts)
	}
	// Dead: data is refused until a new birth.
	if _, err := d.Decode(nil, "spBv1.0/g/NDATA/n", marshal(t, &sproto.Payload{Seq: proto.Uint64(2)}), 1); err == nil {
		t.Fatal("data after death accepted")
	}
}

func TestMalformedRejectedWithReasons(t *testing.T) {
	d := NewDecoder(NewState(Options{}), nil)
	m := mkMetric("temp", 1, sproto.DataType_Double)
	m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}
	good := birth(t, 0, 1, m)
	for _, c := range []struct {
		topic, want string
		payload     []byte
	}{
		{"spBv1.0/g/NBIRTH/n", "invalid Sparkplug B payload", good[:len(good)-3]},
		{"spBv1.0/g/NBIRTH/n", "invalid Sparkplug B payload", []byte{0xff, 0xff, 0xff}},
		{"plant/x", "namespace", good},
		{"spBv1.0/g/NBIRTH", "no edge node", good},
		{"spBv1.0/g/DDATA/n", "device id", good},
		{"spBv1.0/g/NBIRTH/n", "datatype 99", marshal(t, &sproto.Payload{Seq: proto.Uint64(0), Metrics: []*sproto.Payload_Metric{mkMetric("x", 1, 99)}})},
		{"spBv1.0/g/NBIRTH/n", "does not match datatype", marshal(t, &sproto.Payload{Seq: proto.Uint64(0), Metrics: []*sproto.Payload_Metric{
			{Name: proto.String("x"), Datatype: dt(sproto.DataType_Boolean), Value: &sproto.Payload_Metric_StringValue{StringValue: "t"}}}})},
		{"spBv1.0/g/NBIRTH/n", "whole number", marshal(t, &sproto.Payload{Seq: proto.Uint64(0), Metrics: []*sproto.Payload_Metric{
			{Name: proto.String("x"), Datatype: dt(sproto.DataType_Int32Array), Value: &sproto.Payload_Metric_BytesValue{BytesValue: []byte{1, 2, 3}}}}})},
	} {
		pts, err := d.Decode(nil, c.topic, c.payload, 1)
		if err == nil || len(pts) != 0 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, %v; want error with %q", c.topic, pts, err, c.want)
		}
	}
}

func TestEdgeNodeRoundTrip(t *testing.T) {
	e, err := NewEdgeNode("g", "edge1")
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(NewState(Options{}), func(_ string, t Topic) (string, error) { return t.Device, nil })
	now := T0 * 1e6
	_ = e.Connecting(now)
	in := [][]engine.Point{
		{{Asset: "m1", Tag: "a", Value: engine.Float(1.5), TS: now}, {Asset: "m1", Tag: "b", Value: engine.Uint(math.MaxUint64), TS: now}},
		{{Asset: "m1", Tag: "a", Value: engine.Float(2.5), TS: now + 1e6}, {Asset: "m2", Tag: "c", Value: engine.String("x"), Quality: engine.Bad, TS: now}},
		{{Asset: "m1", Tag: "a", Value: engine.Int(7), TS: now + 2e6}, {Tag: "n", Value: engine.Bool(true), TS: now}, {Asset: "m1", Tag: "b", Value: engine.Null(), TS: now}},
	}
	var got []engine.Point
	for _, pts := range in {
		msgs, rej := e.Data(pts, now)
		if len(rej) > 0 {
			t.Fatal(rej)
		}
		for _, m := range msgs {
			got, err = d.Decode(got, m.Topic, m.Payload, 0)
			if err != nil {
				t.Fatalf("%s: %v", m.Topic, err)
			}
		}
	}
	// Every input point decodes; births repeat earlier values too.
	for _, pts := range in {
		for _, p := range pts {
			found := false
			for _, g := range got {
				if g.Asset == p.Asset && g.Tag == p.Tag && g.Value.Equal(p.Value) && g.Value.Kind() == p.Value.Kind() && g.TS == p.TS && g.Quality == p.Quality {
					found = true
				}
			}
			if !found {
				t.Errorf("point %+v not decoded from the edge node's messages: %+v", p, got)
			}
		}
	}
}

// Each session's births carry the bdSeq of that session's will, and
// Connecting may run beside the other methods (the MQTT client's goroutine
// builds the CONNECT).
func TestEdgeNodeBdSeqPerSession(t *testing.T) {
	e, _ := NewEdgeNode("g", "n")
	bd := func(m Message) int64 {
		var pl sproto.Payload
		if err := proto.Unmarshal(m.Payload, &pl); err != nil {
			t.Fatal(err)
		}
		for _, x := range pl.Metrics {
			if x.GetName() == BdSeqMetric {
				return int64(x.GetLongValue())
			}
		}
		return -1
	}
	for want := range int64(3) {
		will := e.Connecting(0)
		if bd(will) != want {
			t.Fatalf("will bdSeq %d, want %d", bd(will), want)
		}
		msgs, _ := e.Data([]engine.Point{{Tag: "x", Value: engine.Int(1)}}, 0)
		if !strings.HasSuffix(msgs[0].Topic, "/NBIRTH/n") || bd(msgs[0]) != want {
			t.Fatalf("session %d: first message %s with bdSeq %d", want, msgs[0].Topic, bd(msgs[0]))
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			e.Connecting(0)
		}
	}()
	for range 100 {
		e.Data([]engine.Point{{Tag: "x", Value: engine.Int(2)}}, 0)
	}
	<-done
}

// New metrics are born together: one DBIRTH per device per batch, carrying
// the new metrics' first points; the other points go out as DDATA.
func TestEdgeNodeOneBirthPerDevicePerBatch(t *testing.T) {
	e, _ := NewEdgeNode("g", "n")
	e.Connecting(0)
	var batch []engine.Point
	for i := range 10 {
		batch = append(batch, engine.Point{Asset: "d1", Tag: fmt.Sprint("t", i), Value: engine.Int(int64(i))})
	}
	topics := func(msgs []Message) string {
		var s []string
		for _, m := range msgs {
			s = append(s, strings.Split(m.Topic, "/")[2])
		}
		return strings.Join(s, " ")
	}
	msgs, _ := e.Data(batch, 0)
	if got := topics(msgs); got != "NBIRTH DBIRTH" {
		t.Fatalf("first batch: %s", got)
	}
	batch = append(batch, engine.Point{Asset: "d1", Tag: "new", Value: engine.Bool(true)}, engine.Point{Asset: "d2", Tag: "x", Value: engine.Float(1)})
	msgs, _ = e.Data(batch, 0)
	if got := topics(msgs); got != "DBIRTH DBIRTH DDATA" {
		t.Fatalf("second batch: %s", got)
	}
	msgs, _ = e.Data([]engine.Point{{Asset: "d1", Tag: "t1", Value: engine.String("now a string")}, {Asset: "d1", Tag: "t2", Value: engine.Int(5)}}, 0)
	if got := topics(msgs); got != "DBIRTH DDATA" {
		t.Fatalf("datatype change: %s", got)
	}
}

// Data may name its metrics instead of using aliases; a name or alias of
// another device is not this device's metric.
func TestDataByNameAndForeignAlias(t *testing.T) {
	d := NewDecoder(NewState(Options{}), nil)
	if _, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 1), 1); err != nil {
		t.Fatal(err)
	}
	for i, dev := range []string{"a", "b"} {
		m := mkMetric("level", uint64(10+i), sproto.DataType_Float)
		m.Value = &sproto.Payload_Metric_FloatValue{FloatValue: 1}
		if _, err := d.Decode(nil, "spBv1.0/g/DBIRTH/n/"+dev, marshal(t, &sproto.Payload{Seq: proto.Uint64(uint64(1 + i)), Metrics: []*sproto.Payload_Metric{m}}), 1); err != nil {
			t.Fatal(err)
		}
	}
	byName := marshal(t, &sproto.Payload{Seq: proto.Uint64(3), Metrics: []*sproto.Payload_Metric{{Name: proto.String("level"), Value: &sproto.Payload_Metric_FloatValue{FloatValue: 2.5}}}})
	pts, err := d.Decode(nil, "spBv1.0/g/DDATA/n/b", byName, 1)
	if err != nil || len(pts) != 1 || pts[0].Asset != "g/n/b" || !pts[0].Value.Equal(engine.Float(2.5)) {
		t.Fatalf("by name: %+v %v", pts, err)
	}
	foreign := marshal(t, &sproto.Payload{Seq: proto.Uint64(4), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(10), Value: &sproto.Payload_Metric_FloatValue{FloatValue: 3}}}})
	if pts, err = d.Decode(nil, "spBv1.0/g/DDATA/n/b", foreign, 1); err == nil || len(pts) != 0 || !strings.Contains(err.Error(), `device "a"`) {
		t.Fatalf("foreign alias: %+v %v", pts, err)
	}
}

// Complex types have no point form: born (their alias stays taken), their
// values counted as skipped, the other metrics of the message decoded.
func TestComplexTypesSkipped(t *testing.T) {
	st := NewState(Options{})
	d := NewDecoder(st, nil)
	tm := mkMetric("udt", 1, sproto.DataType_Template)
	tm.Value = &sproto.Payload_Metric_TemplateValue{TemplateValue: &sproto.Payload_Template{IsDefinition: proto.Bool(true)}}
	x := mkMetric("x", 2, sproto.DataType_Int32)
	x.Value = &sproto.Payload_Metric_IntValue{IntValue: 1}
	pts, err := d.Decode(nil, "spBv1.0/g/NBIRTH/n", birth(t, 0, 1, tm, x), 1)
	if err != nil || len(pts) != 1 || pts[0].Tag != "x" || st.Skipped() != 1 {
		t.Fatalf("birth: %+v %v skipped %d", pts, err, st.Skipped())
	}
	data := marshal(t, &sproto.Payload{Seq: proto.Uint64(1), Metrics: []*sproto.Payload_Metric{
		{Alias: proto.Uint64(1), Value: &sproto.Payload_Metric_TemplateValue{TemplateValue: &sproto.Payload_Template{}}},
		{Alias: proto.Uint64(2), Value: &sproto.Payload_Metric_IntValue{IntValue: 2}}}})
	pts, err = d.Decode(nil, "spBv1.0/g/NDATA/n", data, 1)
	if err != nil || len(pts) != 1 || !pts[0].Value.Equal(engine.Int(2)) || st.Skipped() != 2 {
		t.Fatalf("data: %+v %v skipped %d", pts, err, st.Skipped())
	}
}
