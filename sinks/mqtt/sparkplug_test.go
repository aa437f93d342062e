package mqtt

import (
	"strings"
	"testing"
	"time"

	"github.com/flowd/flowd/engine"
)

func TestSparkplugConfig(t *testing.T) {
	env := &engine.Env{Pipeline: "p", Name: "edge"}
	for _, c := range []struct {
		cfg  Config
		want string // "" ok; else the field blamed
	}{
		{Config{Format: "sparkplug", SpGroup: "plant"}, ""},
		{Config{Format: "sparkplug", SpGroup: "plant", SpNode: "gw1"}, ""},
		{Config{Format: "sparkplug"}, "sparkplug_group"},
		{Config{Format: "sparkplug", SpGroup: "a/b"}, "sparkplug_group"},
		{Config{Format: "sparkplug", SpGroup: "plant", SpNode: "gw+"}, "sparkplug_edge_node"},
		{Config{Format: "sparkplug", SpGroup: "plant", Topic: "x"}, "topic"},
		{Config{Format: "json", Topic: "x", SpGroup: "plant"}, "sparkplug_group"},
		{Config{Format: "sparkplug", SpGroup: "plant", Retain: true}, "retain"},
	} {
		c.cfg.Broker, c.cfg.QoS, c.cfg.MaxInflight, c.cfg.KeepAlive = "mqtt://127.0.0.1:1883", 1, 16, 30*time.Second
		s, err := New(&c.cfg, env)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: got %v, want an error on %s", c.cfg, err, c.want)
		case c.want == "" && c.cfg.SpNode == "" && s.(*Sink).sp.node.Node != "flowd-p-edge":
			t.Errorf("default edge node id %q", s.(*Sink).sp.node.Node)
		}
	}
}
