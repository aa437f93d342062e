package codecs

import (
	"testing"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec/codectest"
)

// TestConformance runs the codec conformance suite against every codec of
// the build.
func TestConformance(t *testing.T) {
	all := All().All()
	if len(all) < 4 {
		t.Fatalf("%d codecs registered", len(all))
	}
	for _, c := range all {
		t.Run(c.Name, func(t *testing.T) { codectest.Run(t, c) })
	}
}

// FuzzDecode feeds every decoder arbitrary bytes: a payload is decoded or
// rejected with a reason, never a crash (go test -fuzz FuzzDecode ./codecs).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"tag":"a","value":1}`, `[{"tag":"a","value":1.5,"ts":1}]`, `{"T":{"Value":1,"StatusCode":{"Code":1}}}`,
		`{"asset":"a","points":{"t":{"value":true,"quality":"bad","ts":"2026-01-01T00:00:00Z"}}}`, `42`, ``} {
		f.Add([]byte(s))
	}
	all := All().All()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range all {
			if c.Decode == nil {
				continue
			}
			out, err := c.Decode(nil, &engine.Message{Payload: b, Now: 1})
			if err != nil {
				if len(out) != 0 {
					t.Fatalf("%s: error %v with %d points", c.Name, err, len(out))
				}
				if engine.RejectReason(err) == "decode" {
					t.Fatalf("%s: error %v without a reason", c.Name, err)
				}
				continue
			}
			for _, p := range out {
				if p.Tag == "" {
					t.Fatalf("%s: point without a tag from %q", c.Name, b)
				}
			}
		}
	})
}
