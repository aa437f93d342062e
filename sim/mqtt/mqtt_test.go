package mqtt

import (
	"context"
	"errors"
	"testing"
)

// Without a rate, pace calls step back to back until the limit, and stops
// at the first failing step.
func TestPaceLimitAndError(t *testing.T) {
	n := 0
	pace(context.Background(), 0, 5, func() error { n++; return nil })
	if n != 5 {
		t.Fatalf("%d steps, want the limit 5", n)
	}
	n = 0
	pace(context.Background(), 0, 0, func() error {
		n++
		if n == 3 {
			return errors.New("broker gone")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("%d steps, want 3 (the third failed)", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n = 0
	pace(ctx, 100, 0, func() error { n++; return nil })
	if n != 0 {
		t.Fatalf("%d steps after the context ended", n)
	}
}

func TestCheck(t *testing.T) {
	good := Options{Broker: "mqtt://127.0.0.1:1883", ClientPrefix: "p", Format: "json", Clients: 1, Assets: 1, Tags: 1, QoS: 1, Change: 1}
	if err := good.Check(); err != nil {
		t.Fatalf("%+v: %v", good, err)
	}
	for name, f := range map[string]func(*Options){
		"format":  func(o *Options) { o.Format = "xml" },
		"clients": func(o *Options) { o.Clients = 0 },
		"qos":     func(o *Options) { o.QoS = 3 },
		"change":  func(o *Options) { o.Change = 1.5 },
		"rate":    func(o *Options) { o.Rate = -1 },
		"broker":  func(o *Options) { o.Broker = "http://127.0.0.1" },
	} {
		o := good
		f(&o)
		if err := o.Check(); err == nil {
			t.Errorf("%s: %+v passes", name, o)
		}
	}
}
