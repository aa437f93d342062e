package mqtt

import (
	"errors"
	"testing"

	"github.com/flowd/flowd/common/sparkplug"
	"github.com/flowd/flowd/engine"
)

// A birth decoded by one connection's decoder lets another connection's
// decoder resolve the aliases (shared subscriptions split them), and
// asset_expr is evaluated on the birth's topic.
func TestSparkplugClonesShareAliasTables(t *testing.T) {
	d := decoder(t, Config{Format: "sparkplug", SeqCheck: true, AssetExpr: engine.Expr{Src: "topic[3] + ':' + (len(topic) > 4 ? topic[4] : 'node')"}})
	a, b := d.Clone(), d.Clone()
	e, err := sparkplug.NewEdgeNode("plant", "gw1")
	if err != nil {
		t.Fatal(err)
	}
	e.Connecting(now)
	msgs, _ := e.Data([]engine.Point{{Asset: "press", Tag: "force", Value: engine.Float(1), TS: now}}, now)
	more, _ := e.Data([]engine.Point{{Asset: "press", Tag: "force", Value: engine.Float(2), TS: now}}, now)
	if len(msgs) != 2 || len(more) != 1 {
		t.Fatalf("want NBIRTH+DBIRTH then DDATA, got %d and %d messages", len(msgs), len(more))
	}
	for _, m := range msgs {
		if _, err := a.Decode(nil, m.Topic, m.Payload, now); err != nil {
			t.Fatal(err)
		}
	}
	pts, err := b.Decode(nil, more[0].Topic, more[0].Payload, now)
	if err != nil || len(pts) != 1 || pts[0].Asset != "gw1:press" || pts[0].Tag != "force" || !pts[0].Value.Equal(engine.Float(2)) {
		t.Fatalf("got %+v, %v", pts, err)
	}
	// A fresh source knows nothing: the same data asks for a rebirth.
	fresh := decoder(t, Config{Format: "sparkplug", SeqCheck: true})
	_, err = fresh.Decode(nil, more[0].Topic, more[0].Payload, now)
	var re *sparkplug.RebirthError
	if !errors.As(err, &re) || !re.Request || re.Node != "gw1" {
		t.Fatalf("want a rebirth request, got %v", err)
	}
}

// BenchmarkDecodeSparkplug is the source's decoder on DDATA of 20 Double
// metrics by alias (the asset computed at the birth).
func BenchmarkDecodeSparkplug(b *testing.B) {
	d := decoder(b, Config{Format: "sparkplug", SeqCheck: false})
	e, _ := sparkplug.NewEdgeNode("plant", "gw1")
	e.Connecting(now)
	pts := make([]engine.Point, 20)
	for i := range pts {
		pts[i] = engine.Point{Asset: "press", Tag: "tag" + string(rune('a'+i)), Value: engine.Float(float64(i)), TS: now}
	}
	births, _ := e.Data(pts, now)
	for _, m := range births {
		if _, err := d.Decode(nil, m.Topic, m.Payload, now); err != nil {
			b.Fatal(err)
		}
	}
	data, _ := e.Data(pts, now)
	out := make([]engine.Point, 0, 32)
	b.ReportAllocs()
	b.SetBytes(int64(len(data[0].Payload)))
	for b.Loop() {
		var err error
		if out, err = d.Decode(out[:0], data[0].Topic, data[0].Payload, now); err != nil || len(out) != 20 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(20*b.N)/b.Elapsed().Seconds(), "metrics/s")
}
