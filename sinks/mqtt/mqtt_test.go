package mqtt

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/flowd/flowd/codecs"
	jsoncodec "github.com/flowd/flowd/codecs/json"
	"github.com/flowd/flowd/engine/codec"
	"strings"
	"testing"
	"time"

	mqttc "github.com/flowd/flowd/common/mqtt"
	"github.com/flowd/flowd/engine"
)

func sink(t testing.TB, c Config) *Sink {
	t.Helper()
	c.Broker = "mqtt://127.0.0.1:1883"
	if c.Format == "" {
		c.Format = "json"
	}
	c.QoS, c.MaxInflight, c.KeepAlive = 1, 16, 30*time.Second
	s, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Sink)
}

func points() []engine.Point {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixNano()
	return []engine.Point{
		{Asset: "line1", Tag: "temp", Value: engine.Float(21.5), TS: ts, Attrs: map[string]string{"cell": "c1"}},
		{Asset: "line2", Tag: "temp", Value: engine.Int(7), TS: ts},
		{Asset: "line1", Tag: "run", Value: engine.Bool(true), TS: ts, Quality: engine.Bad},
	}
}

func topicOf(t *testing.T, s *Sink, p *engine.Point) string {
	t.Helper()
	got, err := s.TopicFor(p)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestTopicFor(t *testing.T) {
	s := sink(t, Config{TopicExpr: engine.Expr{Src: "'plant/' + asset + '/' + tag + '/' + quality + '/' + attrs.cell"}})
	pts := points()
	if got := topicOf(t, s, &pts[0]); got != "plant/line1/temp/good/c1" {
		t.Errorf("got %q", got)
	}
	if got := topicOf(t, s, &pts[1]); got != "plant/line2/temp/good/" {
		t.Errorf("got %q", got)
	}
	lit := sink(t, Config{Topic: "fixed/topic"})
	if got := topicOf(t, lit, &pts[0]); got != "fixed/topic" {
		t.Errorf("got %q", got)
	}
	// Anything pointexpr takes: functions, conditions.
	s = sink(t, Config{TopicExpr: engine.Expr{Src: "'plant/' + upper(asset) + (quality == 'good' ? '/data' : '/suspect')"}})
	if got := topicOf(t, s, &pts[2]); got != "plant/LINE1/suspect" {
		t.Errorf("got %q", got)
	}
	// An empty or wildcard topic is an error, and Messages leaves that point out.
	s = sink(t, Config{TopicExpr: engine.Expr{Src: "attrs.cell"}})
	if _, err := s.TopicFor(&pts[1]); err == nil {
		t.Error("an empty topic should be an error")
	}
	var out engine.WriteError
	if msgs, _ := s.Messages(nil, pts, &out); len(msgs) != 1 || msgs[0].topic != "c1" {
		t.Errorf("messages: %+v", msgs)
	}
	// The points left out are reported by index for the engine to settle.
	if r := out.Rejections(); len(r) != len(pts)-1 || r[0].Reason != "topic" || r[0].Err == nil {
		t.Errorf("rejections: %+v", r)
	}
	s = sink(t, Config{TopicExpr: engine.Expr{Src: "asset + '/#'"}})
	if _, err := s.TopicFor(&pts[1]); err == nil {
		t.Error("a wildcard topic should be an error")
	}
}

func TestMessagesFormats(t *testing.T) {
	pts := points()
	s := sink(t, Config{TopicExpr: engine.Expr{Src: "'p/' + asset"}})
	msgs, _ := s.Messages(nil, pts, nil)
	if len(msgs) != 3 || msgs[0].topic != "p/line1" || !strings.HasPrefix(string(msgs[0].payload), `{"asset":"line1","tag":"temp","value":21.5,`) {
		t.Errorf("json: %+v", msgs)
	}
	s = sink(t, Config{TopicExpr: engine.Expr{Src: "'p/' + asset"}, Format: "json_batch"})
	msgs, _ = s.Messages(nil, pts, nil)
	if len(msgs) != 2 || msgs[0].topic != "p/line1" || strings.Count(string(msgs[0].payload), `"tag"`) != 2 || msgs[1].topic != "p/line2" {
		t.Errorf("json_batch: %d messages %+v", len(msgs), msgs)
	}
	s = sink(t, Config{Topic: "assets", Format: "asset_json"})
	msgs, _ = s.Messages(nil, points(), nil)
	if len(msgs) != 2 || !strings.HasPrefix(string(msgs[0].payload), `{"asset":"line1","points":{`) {
		t.Errorf("asset_json: %+v", msgs)
	}
	// Payloads are distinct slices of one buffer: none overwrites another.
	if string(msgs[1].payload[:18]) != `{"asset":"line2","` {
		t.Errorf("payload overwritten: %s", msgs[1].payload)
	}
}

func TestConfigErrors(t *testing.T) {
	for field, c := range map[string]Config{
		"topic":      {Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 1, MaxInflight: 1},
		"topic_expr": {Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 1, MaxInflight: 1, TopicExpr: engine.Expr{Src: "'a/' + asset + tgs"}},
		"qos":        {Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 5, MaxInflight: 1, Topic: "t"},
		"broker":     {Connection: mqttc.Connection{Broker: "udp://h"}, QoS: 1, MaxInflight: 1, Topic: "t"},
	} {
		_, err := New(&c, &engine.Env{Pipeline: "p", Name: "n", Codecs: codecs.All()})
		var fe *engine.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
	c := Config{Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 1, MaxInflight: 1, TopicExpr: engine.Expr{Src: "'a/' + asset + tgs"}}
	_, err := New(&c, &engine.Env{Codecs: codecs.All()})
	var fe *engine.FieldError
	if !errors.As(err, &fe) || fe.Offset != 15 || fe.Expr == nil {
		t.Errorf("compile error should point at the unknown name (offset 15): %#v", fe)
	}
	c = Config{Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 1, MaxInflight: 1, TopicExpr: engine.Expr{Src: "ts"}}
	if _, err := New(&c, &engine.Env{Codecs: codecs.All()}); err == nil {
		t.Error("a topic_expr giving an int should be refused")
	}
	c = Config{Connection: mqttc.Connection{Broker: "mqtt://h"}, QoS: 1, MaxInflight: 1, Topic: "a/+"}
	if _, err := New(&c, &engine.Env{Codecs: codecs.All()}); err == nil {
		t.Error("a wildcard in topic should be refused")
	}
}

func BenchmarkMessagesJSON(b *testing.B) {
	s := sink(b, Config{TopicExpr: engine.Expr{Src: "'plant/' + asset + '/' + tag"}})
	pts := make([]engine.Point, 0, 1000)
	for range 333 {
		pts = append(pts, points()...)
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		_, buf = s.Messages(buf[:0], pts, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pts)), "ns/point")
}

// json_batch is split by max_message_bytes into the same messages every sink
// makes (the shared framer), each under the limit, no point lost.
func TestJSONBatchSplitByMaxMessageBytes(t *testing.T) {
	var pts []engine.Point
	for i := range 100 {
		pts = append(pts, engine.Point{Asset: "a", Tag: fmt.Sprintf("t%03d", i), Value: engine.Int(int64(i)), TS: int64(i) * 1e6})
	}
	const limit = 1000
	s := sink(t, Config{Topic: "b", Format: "json_batch", MaxMessageBytes: limit})
	msgs, _ := s.Messages(nil, append([]engine.Point(nil), pts...), nil)
	if len(msgs) < 2 {
		t.Fatalf("%d messages: json_batch not split under %d bytes", len(msgs), limit)
	}
	f := codec.Framer{Codec: jsoncodec.BatchCodec, MaxBytes: limit}
	buf, frames := f.Append(nil, nil, append([]engine.Point(nil), pts...), nil)
	if len(frames) != len(msgs) {
		t.Fatalf("%d messages, the framer makes %d", len(msgs), len(frames))
	}
	var back []engine.Point
	for i, m := range msgs {
		if len(m.payload) > limit {
			t.Errorf("message %d: %d bytes over %d", i, len(m.payload), limit)
		}
		if !bytes.Equal(m.payload, frames[i].Payload(buf)) {
			t.Errorf("message %d differs from the shared framing:\n%s\n%s", i, m.payload, frames[i].Payload(buf))
		}
		var err error
		if back, err = jsoncodec.Decode(back, &engine.Message{Payload: m.payload}); err != nil {
			t.Fatal(err)
		}
	}
	if len(back) != len(pts) || back[0].Tag != "t000" || back[99].Tag != "t099" {
		t.Errorf("%d points back", len(back))
	}
	// Without a limit (the default) a batch is one message, as before.
	s = sink(t, Config{Topic: "b", Format: "json_batch"})
	if msgs, _ := s.Messages(nil, pts, nil); len(msgs) != 1 {
		t.Errorf("no limit: %d messages", len(msgs))
	}
}

// Each message names the points it carries, as Messages leaves them (json
// one each, json_batch regrouped by topic, asset_json by asset): a failed
// publish hands back exactly those points.
func TestMessagesNameTheirPoints(t *testing.T) {
	for _, format := range []string{"json", "json_batch", "asset_json"} {
		s := sink(t, Config{TopicExpr: engine.Expr{Src: "'p/' + asset"}, Format: format, MaxMessageBytes: 200})
		pts := append(points(), points()...)
		pts = append(pts, engine.Point{Asset: "line3", Tag: "big", Value: engine.String(strings.Repeat("x", 300))})
		pts = append(pts, points()...)
		var out engine.WriteError
		msgs, _ := s.Messages(nil, pts, &out)
		covered := make([]int, len(pts))
		for _, m := range msgs {
			for j := m.from; j < m.to; j++ {
				covered[j]++
				if "p/"+pts[j].Asset != m.topic || !strings.Contains(string(m.payload), `"tag":"`+pts[j].Tag+`"`) && !strings.Contains(string(m.payload), `"`+pts[j].Tag+`":`) {
					t.Fatalf("%s: message to %s (%s) names point %d %+v", format, m.topic, m.payload, j, pts[j])
				}
			}
		}
		for _, r := range out.Rejections() {
			covered[r.Index]++
			if pts[r.Index].Tag != "big" {
				t.Fatalf("%s: rejected %+v", format, pts[r.Index])
			}
		}
		for j, n := range covered {
			if n != 1 {
				t.Fatalf("%s: point %d %+v is in %d messages or rejections", format, j, pts[j], n)
			}
		}
	}
}
