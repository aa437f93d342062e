package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/common/sparkplug/sproto"
	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"google.golang.org/protobuf/proto"
)

// spPublisher publishes in order (one message in flight).
func spPublisher(t *testing.T, broker, id string) func(topic string, pl *sproto.Payload) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pub, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), id, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	return func(topic string, pl *sproto.Payload) {
		t.Helper()
		b, err := proto.Marshal(pl)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, topic, b, 1); err != nil {
			t.Fatal(err)
		}
	}
}

type spMsg struct {
	topic   string
	payload []byte
}

// spCollector keeps every message of a topic filter, from a subscription
// made before it returns.
type spCollector struct {
	mu   sync.Mutex
	msgs []spMsg
}

func (c *spCollector) all() []spMsg {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]spMsg(nil), c.msgs...)
}

func spCollect(t *testing.T, broker, filter string) *spCollector {
	t.Helper()
	c := &spCollector{}
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan error, 1)
	cm, err := mqttc.Connect(ctx, testMQTTSettings(broker), fmt.Sprintf("spcollect-%d", time.Now().UnixNano()), false, mqttc.Handlers{
		OnPublish: func(pr autopaho.PublishReceived) {
			c.mu.Lock()
			c.msgs = append(c.msgs, spMsg{pr.Packet.Topic, append([]byte(nil), pr.Packet.Payload...)})
			c.mu.Unlock()
		},
		OnUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				_, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
				select {
				case subscribed <- err:
				default:
				}
			}()
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		cm.Disconnect(dctx)
		cancel()
	})
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("collector did not subscribe")
	}
	return c
}

type spOut struct {
	Asset   string            `json:"asset"`
	Tag     string            `json:"tag"`
	Value   json.RawMessage   `json:"value"`
	Quality string            `json:"quality"`
	TS      string            `json:"ts"`
	Attrs   map[string]string `json:"attrs"`
}

func (o spOut) value(t *testing.T) engine.Value {
	v, err := codec.ParseValue(o.Value)
	if err != nil {
		t.Fatalf("value %s: %v", o.Value, err)
	}
	return v
}

const spT0 = int64(1_700_000_000_000) // ms

type spCase struct {
	name string
	dt   sproto.DataType
	set  func(*sproto.Payload_Metric)
	want engine.Value
}

func spLE(n int, vals ...uint64) []byte {
	var b []byte
	for _, v := range vals {
		switch n {
		case 1:
			b = append(b, byte(v))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case 8:
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	}
	return b
}

// spCases is every scalar datatype and the array kinds, written with the
// wire encoding the specification gives them, and the value flowd must
// decode each to.
func spCases() []spCase {
	i := func(v uint32) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_IntValue{IntValue: v} }
	}
	l := func(v uint64) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_LongValue{LongValue: v} }
	}
	by := func(v []byte) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_BytesValue{BytesValue: v} }
	}
	s := func(v string) func(*sproto.Payload_Metric) {
		return func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_StringValue{StringValue: v} }
	}
	neg := func(v int64) uint64 { return uint64(v) }
	return []spCase{
		{"int8", sproto.DataType_Int8, i(uint32(uint8(0xfb))), engine.Int(-5)},
		{"int16", sproto.DataType_Int16, i(uint32(uint16(0xfed4))), engine.Int(-300)},
		{"int32", sproto.DataType_Int32, i(uint32(neg(-70000))), engine.Int(-70000)},
		{"int64", sproto.DataType_Int64, l(neg(math.MinInt64)), engine.Int(math.MinInt64)},
		{"uint8", sproto.DataType_UInt8, i(255), engine.Int(255)},
		{"uint16", sproto.DataType_UInt16, i(65535), engine.Int(65535)},
		{"uint32", sproto.DataType_UInt32, i(math.MaxUint32), engine.Int(math.MaxUint32)},
		{"uint64", sproto.DataType_UInt64, l(math.MaxUint64), engine.Uint(math.MaxUint64)},
		{"float", sproto.DataType_Float, func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_FloatValue{FloatValue: -0.375} }, engine.Float(-0.375)},
		{"double", sproto.DataType_Double, func(m *sproto.Payload_Metric) {
			m.Value = &sproto.Payload_Metric_DoubleValue{DoubleValue: 21.123456789012}
		}, engine.Float(21.123456789012)},
		{"boolean", sproto.DataType_Boolean, func(m *sproto.Payload_Metric) { m.Value = &sproto.Payload_Metric_BooleanValue{BooleanValue: true} }, engine.Bool(true)},
		{"string", sproto.DataType_String, s("Grüße \"x\""), engine.String("Grüße \"x\"")},
		{"text", sproto.DataType_Text, s("t"), engine.String("t")},
		{"uuid", sproto.DataType_UUID, s("0b6e"), engine.String("0b6e")},
		{"datetime", sproto.DataType_DateTime, l(uint64(spT0 + 123)), engine.String("2023-11-14T22:13:20.123Z")},
		{"bytes", sproto.DataType_Bytes, by([]byte{0, 1, 254}), engine.String("AAH+")},
		{"int32array", sproto.DataType_Int32Array, by(spLE(4, neg(-3)&0xffffffff, 7)), engine.String("[-3,7]")},
		{"uint64array", sproto.DataType_UInt64Array, by(spLE(8, math.MaxUint64)), engine.String("[18446744073709551615]")},
		{"doublearray", sproto.DataType_DoubleArray, by(spLE(8, math.Float64bits(0.5))), engine.String("[0.5]")},
		{"booleanarray", sproto.DataType_BooleanArray, by(append(spLE(4, 2), 0b0100_0000)), engine.String("[false,true]")},
		{"stringarray", sproto.DataType_StringArray, by([]byte("a\x00b c\x00")), engine.String(`["a","b c"]`)},
		{"null", sproto.DataType_Int64, func(m *sproto.Payload_Metric) { m.IsNull = proto.Bool(true) }, engine.Null()},
	}
}

func spBirth(seq, bdSeq uint64, ms []*sproto.Payload_Metric) *sproto.Payload {
	all := append([]*sproto.Payload_Metric{{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(sproto.DataType_Int64)),
		Value: &sproto.Payload_Metric_LongValue{LongValue: bdSeq}}}, ms...)
	return &sproto.Payload{Timestamp: proto.Uint64(uint64(spT0)), Seq: proto.Uint64(seq), Metrics: all}
}

func spSourcePipeline(t *testing.T, broker, group, extra string) (cfg, out, dead string) {
	dir := t.TempDir()
	out = filepath.Join(dir, "out.jsonl")
	dead = filepath.Join(dir, "dead.jsonl")
	cfg = harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "p" {
  dead_letter = sink.dead
  source "mqtt" "in" {
    broker    = %q
    topics    = ["spBv1.0/%s/#"]
    client_id = %q
    format    = "sparkplug"
%s
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
}`, broker, group, group, extra, out, dead))
	return
}

// Births then data by alias only: every datatype decodes exactly, with
// the metrics' own timestamps; the birth's properties become attrs.
func TestSparkplugSourceEveryDatatype(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, _ := spSourcePipeline(t, broker, group, "")
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	pub := spPublisher(t, broker, group+"-edge")
	cases := spCases()
	var birth, data []*sproto.Payload_Metric
	for i, c := range cases {
		m := &sproto.Payload_Metric{Name: proto.String(c.name), Alias: proto.Uint64(uint64(100 + i)), Datatype: proto.Uint32(uint32(c.dt)),
			Timestamp: proto.Uint64(uint64(spT0 - 1000))}
		if c.name == "double" {
			m.Properties = &sproto.Payload_PropertySet{Keys: []string{"engUnit"}, Values: []*sproto.Payload_PropertyValue{
				{Type: proto.Uint32(uint32(sproto.DataType_String)), Value: &sproto.Payload_PropertyValue_StringValue{StringValue: "°C"}}}}
		}
		c.set(m)
		birth = append(birth, m)
		d := &sproto.Payload_Metric{Alias: proto.Uint64(uint64(100 + i)), Timestamp: proto.Uint64(uint64(spT0 + int64(i)))}
		c.set(d)
		data = append(data, d)
	}
	pub("spBv1.0/"+group+"/NBIRTH/edge1", spBirth(0, 3, nil))
	pub("spBv1.0/"+group+"/DBIRTH/edge1/press", &sproto.Payload{Seq: proto.Uint64(1), Timestamp: proto.Uint64(uint64(spT0)), Metrics: birth})
	pub("spBv1.0/"+group+"/DDATA/edge1/press", &sproto.Payload{Seq: proto.Uint64(2), Timestamp: proto.Uint64(uint64(spT0)), Metrics: data})
	var got []spOut
	harness.Eventually(t, 30*time.Second, func() bool {
		got = harness.ReadJSONL[spOut](t, out)
		return len(got) >= 2*len(cases)
	}, "%d points in %s", 2*len(cases), out)
	if len(got) != 2*len(cases) {
		t.Fatalf("%d points, want %d", len(got), 2*len(cases))
	}
	for i, c := range cases {
		b, d := got[i], got[len(cases)+i] // birth values, then data values
		for _, o := range []spOut{b, d} {
			v := o.value(t)
			if o.Asset != group+"/edge1/press" || o.Tag != c.name || !v.Equal(c.want) || v.Kind() != c.want.Kind() || o.Quality != "good" {
				t.Errorf("%s: got %+v (%s %v), want %v (%s)", c.name, o, v.Kind(), v, c.want, c.want.Kind())
			}
		}
		if want := time.UnixMilli(spT0 + int64(i)).UTC(); mustTime(t, d.TS) != want {
			t.Errorf("%s: ts %s, want %s", c.name, d.TS, want.Format(time.RFC3339Nano))
		}
		if c.name == "double" && (b.Attrs["engUnit"] != "°C" || d.Attrs["engUnit"] != "°C") {
			t.Errorf("double: attrs %v / %v, want engUnit °C from the birth's properties", b.Attrs, d.Attrs)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return ts.UTC()
}

// Data from an edge node flowd has no birth of: a rebirth request goes to
// the broker, the message is dead-lettered with its reason, no point is
// emitted; after the birth the same data decodes. A seq gap does the same.
func TestSparkplugDataBeforeBirthRequestsRebirth(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, dead := spSourcePipeline(t, broker, group, `    sparkplug_rebirth_interval = "100ms"`)
	cmds := spCollect(t, broker, "spBv1.0/"+group+"/NCMD/#")
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	pub := spPublisher(t, broker, group+"-edge")
	val := func(alias uint64, v float64) []*sproto.Payload_Metric {
		return []*sproto.Payload_Metric{{Alias: proto.Uint64(alias), Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: v}}}
	}
	pub("spBv1.0/"+group+"/NDATA/n1", &sproto.Payload{Seq: proto.Uint64(5), Metrics: val(1, 11)})
	rebirths := func() int {
		n := 0
		for _, m := range cmds.all() {
			if m.topic == "spBv1.0/"+group+"/NCMD/n1" && sparkplug.IsRebirthRequest(m.payload) {
				n++
			}
		}
		return n
	}
	harness.Eventually(t, 20*time.Second, func() bool { return rebirths() >= 1 }, "a rebirth request on spBv1.0/%s/NCMD/n1", group)
	harness.Eventually(t, 10*time.Second, func() bool { return len(harness.ReadJSONL[spOut](t, dead)) == 1 }, "the data in the dead-letter file")
	dl := harness.ReadJSONL[spOut](t, dead)[0]
	if !strings.Contains(dl.Attrs["dead_letter_error"], "before its NBIRTH") || dl.Attrs["dead_letter_reason"] != "decode" {
		t.Errorf("dead letter: %+v", dl)
	}
	temp := &sproto.Payload_Metric{Name: proto.String("temp"), Alias: proto.Uint64(1), Datatype: proto.Uint32(uint32(sproto.DataType_Double)),
		Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 10}}
	pub("spBv1.0/"+group+"/NBIRTH/n1", spBirth(0, 0, []*sproto.Payload_Metric{temp}))
	pub("spBv1.0/"+group+"/NDATA/n1", &sproto.Payload{Seq: proto.Uint64(1), Metrics: val(1, 12)})
	time.Sleep(200 * time.Millisecond)                                                            // past the rebirth interval
	pub("spBv1.0/"+group+"/NDATA/n1", &sproto.Payload{Seq: proto.Uint64(9), Metrics: val(1, 13)}) // gap
	pub("spBv1.0/"+group+"/NDATA/n1", &sproto.Payload{Seq: proto.Uint64(10), Metrics: val(1, 14)})
	harness.Eventually(t, 20*time.Second, func() bool { return len(harness.ReadJSONL[spOut](t, out)) >= 3 }, "3 points")
	harness.Eventually(t, 20*time.Second, func() bool { return rebirths() >= 2 }, "a second rebirth request after the seq gap")
	var vals []string
	for _, o := range harness.ReadJSONL[spOut](t, out) {
		vals = append(vals, o.Tag+"="+string(o.Value))
	}
	if strings.Join(vals, " ") != "temp=10.0 temp=12.0 temp=14.0" {
		t.Errorf("points %v, want temp=10.0 temp=12.0 temp=14.0 (nothing from before the birth, nothing from the gap)", vals)
	}
	dls := harness.ReadJSONL[spOut](t, dead)
	if len(dls) != 2 || !strings.Contains(dls[1].Attrs["dead_letter_error"], "sequence gap") {
		t.Errorf("dead letters: %+v", dls)
	}
}

// Malformed protobuf, a truncated birth and a value that does not match its
// datatype are rejected with their reasons and dead-lettered; flowd goes on
// and the next valid birth decodes.
func TestSparkplugMalformedDeadLettered(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, dead := spSourcePipeline(t, broker, group, "")
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), group+"-raw", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(ctx)
	temp := &sproto.Payload_Metric{Name: proto.String("temp"), Alias: proto.Uint64(1), Datatype: proto.Uint32(uint32(sproto.DataType_Double)),
		Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 10}}
	good, _ := proto.Marshal(spBirth(0, 0, []*sproto.Payload_Metric{temp}))
	wrong, _ := proto.Marshal(spBirth(0, 0, []*sproto.Payload_Metric{{Name: proto.String("temp"), Datatype: proto.Uint32(uint32(sproto.DataType_Boolean)),
		Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}}}))
	for _, pl := range [][]byte{{0xff, 0xff, 0xff, 0xff}, good[:len(good)-4], wrong, good} {
		if err := raw.Publish(ctx, "spBv1.0/"+group+"/NBIRTH/n1", pl, 1); err != nil {
			t.Fatal(err)
		}
	}
	harness.Eventually(t, 20*time.Second, func() bool {
		return len(harness.ReadJSONL[spOut](t, dead)) == 3 && len(harness.ReadJSONL[spOut](t, out)) == 1
	}, "3 dead letters and the valid birth's point")
	for i, want := range []string{"invalid Sparkplug B payload", "invalid Sparkplug B payload", "does not match datatype Boolean"} {
		if d := harness.ReadJSONL[spOut](t, dead)[i]; !strings.Contains(d.Attrs["dead_letter_error"], want) {
			t.Errorf("dead letter %d: %q, want %q", i, d.Attrs["dead_letter_error"], want)
		}
	}
	if p.Exited() {
		t.Fatal("flowd exited")
	}
}

// NDEATH with the birth's bdSeq marks the node's and its devices' metrics
// bad; a stale NDEATH (another bdSeq) changes nothing.
func TestSparkplugDeathMarksBad(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, _ := spSourcePipeline(t, broker, group, "")
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	pub := spPublisher(t, broker, group+"-edge")
	m := func(name string, alias uint64) *sproto.Payload_Metric {
		return &sproto.Payload_Metric{Name: proto.String(name), Alias: proto.Uint64(alias), Datatype: proto.Uint32(uint32(sproto.DataType_Double)),
			Value: &sproto.Payload_Metric_DoubleValue{DoubleValue: 1}}
	}
	pub("spBv1.0/"+group+"/NBIRTH/n1", spBirth(0, 8, []*sproto.Payload_Metric{m("uptime", 1)}))
	pub("spBv1.0/"+group+"/DBIRTH/n1/d1", &sproto.Payload{Seq: proto.Uint64(1), Metrics: []*sproto.Payload_Metric{m("level", 2)}})
	death := func(bd uint64) *sproto.Payload {
		return &sproto.Payload{Timestamp: proto.Uint64(uint64(spT0)), Metrics: []*sproto.Payload_Metric{{Name: proto.String("bdSeq"),
			Datatype: proto.Uint32(uint32(sproto.DataType_Int64)), Value: &sproto.Payload_Metric_LongValue{LongValue: bd}}}}
	}
	pub("spBv1.0/"+group+"/NDEATH/n1", death(7))
	pub("spBv1.0/"+group+"/NDEATH/n1", death(8))
	harness.Eventually(t, 20*time.Second, func() bool { return len(harness.ReadJSONL[spOut](t, out)) >= 4 }, "4 points")
	time.Sleep(300 * time.Millisecond)
	got := harness.ReadJSONL[spOut](t, out)
	if len(got) != 4 {
		t.Fatalf("%d points, want 2 from births and 2 from one death: %+v", len(got), got)
	}
	bad := map[string]bool{}
	for _, o := range got[2:] {
		if o.Quality == "bad" && string(o.Value) == "null" && mustTime(t, o.TS).Equal(time.UnixMilli(spT0)) {
			bad[o.Asset+"|"+o.Tag] = true
		}
	}
	if !bad[group+"/n1|uptime"] || !bad[group+"/n1/d1|level"] {
		t.Errorf("death points %+v: want uptime and level bad, null, at the NDEATH's timestamp", got[2:])
	}
}

// Two connections in a shared subscription: the broker deals the birth to
// one and the data round-robin to both, and every value decodes, because
// the alias tables are the source's, not a connection's.
func TestSparkplugSharedGroupBirthAndDataOnDifferentConnections(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, dead := spSourcePipeline(t, broker, group, `    group = "spshare"
    connections = 2`)
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	pub := spPublisher(t, broker, group+"-edge")
	pub("spBv1.0/"+group+"/NBIRTH/n1", spBirth(0, 0, []*sproto.Payload_Metric{{Name: proto.String("count"), Alias: proto.Uint64(4),
		Datatype: proto.Uint32(uint32(sproto.DataType_UInt64)), Value: &sproto.Payload_Metric_LongValue{LongValue: 0}}}))
	// Let the birth be decoded before data may overtake it on the other
	// connection (the two connections are not ordered against each other).
	harness.Eventually(t, 20*time.Second, func() bool { return len(harness.ReadJSONL[spOut](t, out)) >= 1 }, "the birth's point")
	const n = 40
	for i := 1; i <= n; i++ {
		pub("spBv1.0/"+group+"/NDATA/n1", &sproto.Payload{Seq: proto.Uint64(uint64(i)), Metrics: []*sproto.Payload_Metric{{Alias: proto.Uint64(4),
			Value: &sproto.Payload_Metric_LongValue{LongValue: math.MaxUint64 - uint64(i)}}}})
	}
	harness.Eventually(t, 30*time.Second, func() bool { return len(harness.ReadJSONL[spOut](t, out)) >= n+1 }, "%d points", n+1)
	seen := map[string]bool{}
	for _, o := range harness.ReadJSONL[spOut](t, out)[1:] {
		if o.Tag != "count" {
			t.Fatalf("point %+v", o)
		}
		seen[string(o.Value)] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[fmt.Sprint(uint64(math.MaxUint64)-uint64(i))] {
			t.Errorf("value %d missing", uint64(math.MaxUint64)-uint64(i))
		}
	}
	if d := harness.ReadJSONL[spOut](t, dead); len(d) > 0 {
		t.Errorf("dead letters: %+v", d)
	}
	// Both connections took a share (mosquitto deals round-robin).
	if c := strings.Count(p.Stderr.String(), `"msg":"mqtt connected"`); c < 2 {
		t.Errorf("%d connections came up, want 2", c)
	}
}

// tahuDecode decodes messages with Eclipse Tahu's JavaScript codec.
func tahuDecode(t *testing.T, msgs []spMsg) []map[string]any {
	t.Helper()
	dir := harness.Require(t, "FLOWD_TEST_SPARKPLUG_JS")
	var in bytes.Buffer
	for _, m := range msgs {
		fmt.Fprintf(&in, "%s %s\n", m.topic, base64.StdEncoding.EncodeToString(m.payload))
	}
	cmd := exec.Command("node", filepath.Join(harness.RepoRoot(), "e2e", "sparkplug_decode.js"))
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var res []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(outb), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if e, ok := m["error"]; ok {
			t.Fatalf("Tahu could not decode %s: %v", m["topic"], e)
		}
		res = append(res, m)
	}
	return res
}

// flowd as a Sparkplug edge node: its NBIRTH, DBIRTH and DDATA, read back
// by Tahu's own decoder, carry the points exactly (names from the births,
// data by alias, seq in order); an NCMD rebirth makes it send its births
// again, and when it is killed the broker publishes its NDEATH will with
// the bdSeq of its NBIRTH.
func TestSparkplugSinkEdgeNodeReadByTahu(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	harness.Require(t, "FLOWD_TEST_SPARKPLUG_JS")
	group := mqttRun(t)
	dir := t.TempDir()
	var in bytes.Buffer
	type pt struct {
		asset, tag string
		v          engine.Value
		ms         int64
	}
	var pts []pt
	for i := range 30 {
		asset := []string{"press", "oven"}[i%2]
		for _, p := range []pt{
			{asset, "force", engine.Float(float64(i) + 0.25), spT0 + int64(i)},
			{asset, "count", engine.Uint(math.MaxUint64 - uint64(i)), spT0 + int64(i)},
			{asset, "on", engine.Bool(i%3 == 0), spT0 + int64(i)},
			{asset, "state", engine.String(fmt.Sprintf("s%d", i)), spT0 + int64(i)},
			{asset, "delta", engine.Int(-int64(i)), spT0 + int64(i)},
		} {
			pts = append(pts, p)
			ep := engine.Point{Asset: p.asset, Tag: p.tag, Value: p.v, TS: p.ms * 1e6}
			in.Write(codec.AppendPoint(nil, &ep))
			in.WriteByte('\n')
		}
	}
	inPath := harness.WriteFile(t, dir, "in.jsonl", in.String())
	pipeline := func(rate int) string {
		return harness.WriteFile(t, dir, fmt.Sprintf("p%d.hcl", rate), fmt.Sprintf(`pipeline "p" {
  source "file" "in" {
    path = %q
    rate = %d
  }
  sink "mqtt" "edge" {
    inputs              = [source.in]
    broker              = %q
    format              = "sparkplug"
    sparkplug_group     = %q
    sparkplug_edge_node = "gw1"
  }
}`, inPath, rate, broker, group))
	}
	nbirths := func(c *spCollector) int {
		n := 0
		for _, m := range c.all() {
			if strings.Contains(m.topic, "/NBIRTH/") {
				n++
			}
		}
		return n
	}
	// Run 1: every point, a rebirth request mid-stream, and the NDEATH
	// flowd publishes itself when the file is done and it exits.
	coll := spCollect(t, broker, "spBv1.0/"+group+"/#")
	p := harness.Start(t, pipeline(50))
	harness.Eventually(t, 30*time.Second, func() bool { return len(coll.all()) >= 5 }, "edge node messages")
	cmd := sparkplug.RebirthRequest(group, "gw1", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rb, err := mqttc.NewPublisher(ctx, testMQTTSettings(broker), group+"-host", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.Publish(ctx, cmd.Topic, cmd.Payload, 1); err != nil {
		t.Fatal(err)
	}
	rb.Close(ctx)
	harness.Eventually(t, 30*time.Second, func() bool { return nbirths(coll) >= 2 }, "a second NBIRTH after the rebirth request")
	if code := p.Wait(60 * time.Second); code != 0 {
		t.Fatalf("flowd exited %d", code)
	}
	harness.Eventually(t, 10*time.Second, func() bool {
		all := coll.all()
		return len(all) > 0 && strings.HasSuffix(all[len(all)-1].topic, "/NDEATH/gw1")
	}, "the NDEATH on exit")

	// Run 2: killed mid-stream, the broker publishes the will.
	coll2 := spCollect(t, broker, "spBv1.0/"+group+"/#")
	p2 := harness.Start(t, pipeline(5))
	harness.Eventually(t, 30*time.Second, func() bool { return nbirths(coll2) >= 1 }, "the NBIRTH of the second run")
	p2.Kill()
	harness.Eventually(t, 60*time.Second, func() bool {
		for _, m := range coll2.all() {
			if strings.HasSuffix(m.topic, "/NDEATH/gw1") {
				return true
			}
		}
		return false
	}, "the NDEATH will after the kill")
	var willBirth, will string
	for _, m := range tahuDecode(t, coll2.all()) {
		topic := m["topic"].(string)
		for _, x := range m["payload"].(map[string]any)["metrics"].([]any) {
			mt := x.(map[string]any)
			if mt["name"] == "bdSeq" && strings.Contains(topic, "/NBIRTH/") {
				willBirth = fmt.Sprint(mt["value"])
			}
			if mt["name"] == "bdSeq" && strings.Contains(topic, "/NDEATH/") {
				will = fmt.Sprint(mt["value"])
			}
		}
	}
	if will == "" || will != willBirth {
		t.Errorf("will NDEATH bdSeq %q, NBIRTH bdSeq %q", will, willBirth)
	}

	dec := tahuDecode(t, coll.all())
	type def struct {
		name string
		dt   int
	}
	aliases := map[string]def{} // device/alias → birth
	bdSeq := ""
	var seq int64 = -1
	got := map[string]int{}
	for i, m := range dec {
		topic := m["topic"].(string)
		raw := m["raw"].(map[string]any)
		parts := strings.Split(topic, "/")
		typ := parts[2]
		if s, ok := raw["seq"]; ok && typ != "NDEATH" {
			n := int64(toF(t, s))
			if typ == "NBIRTH" {
				if n != 0 {
					t.Errorf("NBIRTH seq %d, want 0", n)
				}
			} else if n != (seq+1)%256 {
				t.Errorf("message %d (%s): seq %d after %d", i, topic, n, seq)
			}
			seq = n
		}
		// bdSeq as Tahu's own decoder reads it (it carries a datatype).
		for _, x := range m["payload"].(map[string]any)["metrics"].([]any) {
			mt := x.(map[string]any)
			if mt["name"] != "bdSeq" {
				continue
			}
			switch typ {
			case "NBIRTH":
				if bdSeq != "" && bdSeq != fmt.Sprint(mt["value"]) {
					t.Errorf("bdSeq changed within a session: %s then %v", bdSeq, mt["value"])
				}
				bdSeq = fmt.Sprint(mt["value"])
			case "NDEATH":
				if fmt.Sprint(mt["value"]) != bdSeq {
					t.Errorf("NDEATH bdSeq %v, NBIRTH bdSeq %s", mt["value"], bdSeq)
				}
			}
		}
		if typ != "DBIRTH" && typ != "DDATA" {
			continue
		}
		metrics, _ := raw["metrics"].([]any)
		for _, x := range metrics {
			mt := x.(map[string]any)
			dev := parts[4]
			alias := fmt.Sprint(mt["alias"])
			d := def{}
			if typ == "DBIRTH" {
				d = def{mt["name"].(string), int(toF(t, mt["datatype"]))}
				aliases[dev+"/"+alias] = d
			} else if d = aliases[dev+"/"+alias]; d.name == "" {
				t.Fatalf("DDATA alias %s of %s not in a DBIRTH", alias, dev)
			} else if _, ok := mt["name"]; ok {
				t.Errorf("DDATA metric %v carries its name: data goes by alias", mt)
			}
			var v string
			switch d.dt {
			case 10:
				v = engine.Float(toF(t, mt["doubleValue"])).String()
			case 4:
				u, err := strconv.ParseUint(mt["longValue"].(string), 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				v = fmt.Sprint(int64(u))
			case 8:
				v = mt["longValue"].(string)
			case 11:
				v = fmt.Sprint(mt["booleanValue"] == true)
			case 12:
				v = mt["stringValue"].(string)
			default:
				t.Fatalf("datatype %d of %s", d.dt, d.name)
			}
			got[fmt.Sprintf("%s/%s=%s@%v:%d", dev, d.name, v, mt["timestamp"], d.dt)]++
		}
	}
	if bdSeq == "" {
		t.Fatal("no NBIRTH with bdSeq")
	}
	dts := map[engine.Kind]int{engine.KindFloat: 10, engine.KindUint: 8, engine.KindBool: 11, engine.KindString: 12, engine.KindInt: 4}
	for _, p := range pts {
		key := fmt.Sprintf("%s/%s=%s@%d:%d", p.asset, p.tag, p.v.String(), p.ms, dts[p.v.Kind()])
		if got[key] == 0 {
			some := []string{}
			for k := range got {
				if len(some) < 5 {
					some = append(some, k)
				}
			}
			t.Fatalf("point %s not published (Tahu decoded %d metric values, such as %v)", key, len(got), some)
		}
	}
}

func toF(t *testing.T, v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		var f float64
		if _, err := fmt.Sscan(x, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Fatalf("not a number: %v", v)
	return 0
}

// `flowd sim mqtt --format sparkplug` started before flowd: flowd's first
// data has no birth, it asks each edge node for a rebirth, the simulator
// answers, and from then on every metric decodes; at the end the
// simulator's NDEATHs mark its metrics bad.
func TestSparkplugSimRebirthAndDeath(t *testing.T) {
	concurrent(t)
	broker := harness.Require(t, "FLOWD_TEST_MQTT")
	group := mqttRun(t)
	cfg, out, _ := spSourcePipeline(t, broker, group, "")
	sim := exec.Command(harness.Flowd(t), "sim", "mqtt", "--format", "sparkplug", "--broker", broker, "--group", group,
		"--client-prefix", group, "--clients", "2", "--assets", "2", "--tags", "3", "--rate", "200", "--duration", "6s")
	var simOut bytes.Buffer
	sim.Stdout, sim.Stderr = &simOut, &simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the births are gone by the time flowd subscribes
	p := harness.Start(t, cfg)
	waitConnected(t, p, "source.in")
	if err := sim.Wait(); err != nil {
		t.Fatalf("sim: %v\n%s", err, simOut.String())
	}
	harness.Eventually(t, 20*time.Second, func() bool {
		bad := 0
		for _, o := range harness.ReadJSONL[spOut](t, out) {
			if o.Quality == "bad" {
				bad++
			}
		}
		return bad >= 12
	}, "12 metrics (2 nodes × 2 devices × 3 tags) marked bad by the NDEATHs")
	got := harness.ReadJSONL[spOut](t, out)
	good := 0
	for _, o := range got {
		if o.Quality == "good" {
			good++
		}
	}
	fams, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := harness.Sum(fams, "flowd_sparkplug_rebirth_requests_total"); n < 2 {
		t.Errorf("%v rebirth requests, want one per edge node at least", n)
	}
	if good < 100 {
		t.Errorf("%d good points after the rebirths", good)
	}
	t.Logf("sim: %s; flowd: %d good points, %d in all", strings.TrimSpace(simOut.String()), good, len(got))
}
