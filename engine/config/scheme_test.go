package config

import (
	"strings"
	"testing"
)

func TestCheckScheme(t *testing.T) {
	mqtt := []string{"mqtt", "mqtts", "ws", "wss"}
	for _, c := range []struct {
		u       string
		schemes []string
		want    string // "" = valid
	}{
		{"opc.tcp://10.0.0.1:4840", []string{"opc.tcp"}, ""},
		{"OPC.TCP://plc:4840/ua", []string{"opc.tcp"}, ""},
		{"10.0.0.1:4840", []string{"opc.tcp"}, `"10.0.0.1:4840" has no scheme: want opc.tcp://`},
		{"opc.tpc://plc:4840", []string{"opc.tcp"}, `Did you mean "opc.tcp://"?`},
		{"http://plc:4840", []string{"opc.tcp"}, `scheme "http"`},
		{"opc.tcp:///x", []string{"opc.tcp"}, "has no host"},
		{"mqtts://broker:8883", mqtt, ""},
		{"tcp://u:s3cret@broker:1883", mqtt, `"tcp://xxxxx@broker:1883"`},
		{"u:s3cret@broker:1883", mqtt, "xxxxx@broker:1883"},
		{"broker:9092", []string{"none"}, ""},
		{"kafka://broker:9092", []string{"none"}, "drop kafka://"},
	} {
		err := checkScheme(c.u, c.schemes)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", c.u, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.u, err, c.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: the error repeats the password: %v", c.u, err)
		}
	}
}
