package opcua

import (
	"strings"
	"testing"

	uacommon "github.com/flowd/flowd/common/opcua"
)

func TestBrowseAssetLevels(t *testing.T) {
	v := uacommon.Var{Name: "Temp", Path: []string{"Line1", "Motor", "Temp"}, Objects: []string{"Plant", "Line1", "Motor"}}
	top := uacommon.Var{Name: "Temp", Path: []string{"Temp"}, Objects: []string{"Plant"}}
	for _, c := range []struct {
		levels int
		v      uacommon.Var
		want   string
	}{
		{1, v, "Motor"}, {2, v, "Line1/Motor"}, {3, v, "Plant/Line1/Motor"}, {9, v, "Plant/Line1/Motor"},
		{0, v, "Line1/Motor"}, {0, top, "Plant"}, {2, top, "Plant"},
	} {
		b := BrowseConfig{AssetLevels: c.levels, AssetSeparator: "/"}
		if got := b.assetOf(c.v); got != c.want {
			t.Errorf("asset_levels %d of %v: %q, want %q", c.levels, c.v.Path, got, c.want)
		}
	}
}

// Two node blocks that would write one series are a config error.
func TestValidateDuplicateSeries(t *testing.T) {
	c := Config{Interval: 1, SecurityPolicy: "None", SecurityMode: "None", QueueSize: 1, MaxItemsPerSub: 1,
		ReconnectMin: 1, ReconnectMax: 1, AuthRetry: 1, KeepAliveCount: 1, WatchdogTimeout: 1, Asset: "m",
		Nodes: map[string]string{"temp": "ns=2;s=A.Temp"},
		Node:  []NodeConfig{{Name: "temp", ID: "ns=2;s=B.Temp"}}}
	_, err := c.validate()
	if err == nil || !strings.Contains(err.Error(), "ns=2;s=A.Temp") || !strings.Contains(err.Error(), "ns=2;s=B.Temp") {
		t.Fatalf("got %v, want an error naming both nodes", err)
	}
	c.Node[0].Asset = "other"
	if _, err := c.validate(); err != nil {
		t.Fatal(err)
	}
}
