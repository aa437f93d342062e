package plc

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	uacommon "github.com/flowd/flowd/common/opcua"
)

func TestPLCServesWhatItRecords(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p, err := New(Config{Listen: fmt.Sprintf("opc.tcp://127.0.0.1:%d", port), Assets: 2, Tags: 7, Interval: 50 * time.Millisecond, Change: 1, Record: true, MaxNodesPerRead: 123})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := gopcua.NewClient(p.Endpoint(), gopcua.AutoReconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	if n, err := uacommon.MaxNodesPerRead(ctx, c); err != nil || n != 123 {
		t.Fatalf("MaxNodesPerRead = %d, %v", n, err)
	}
	var vars []uacommon.Var
	if err := uacommon.Browse(ctx, c, ua.NewNumericNodeID(0, 85), 3, func(v uacommon.Var) {
		if v.Parent() == "Asset1" || v.Parent() == "Asset2" {
			vars = append(vars, v)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(vars) != 14 || vars[0].Name != "Tag1" {
		t.Fatalf("browse found %d variables (%v)", len(vars), vars)
	}
	time.Sleep(200 * time.Millisecond)
	for _, id := range []string{p.NodeID(1, 0), p.NodeID(1, 3), p.NodeID(0, 4)} {
		res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: ua.MustParseNodeID(id), AttributeID: ua.AttributeIDValue}}, TimestampsToReturn: ua.TimestampsToReturnBoth})
		if err != nil || len(res.Results) != 1 {
			t.Fatal(err)
		}
		dv := res.Results[0]
		found := false
		for _, s := range p.History(id) {
			if s.TS.Equal(dv.SourceTimestamp) && fmt.Sprint(s.Value) == fmt.Sprint(dv.Value.Value()) {
				found = true
			}
		}
		if !found || dv.Status != ua.StatusOK {
			t.Fatalf("%s: read %v at %s, not in the PLC's record", id, dv.Value.Value(), dv.SourceTimestamp)
		}
	}
	res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: ua.MustParseNodeID("ns=2;s=Nope"), AttributeID: ua.AttributeIDValue}}})
	if err != nil || res.Results[0].Status != ua.StatusBadNodeIDUnknown {
		t.Fatalf("unknown node: %v %v", err, res.Results[0].Status)
	}
}
