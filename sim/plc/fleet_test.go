package plc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

func TestEndpoints(t *testing.T) {
	eps, err := Endpoints("opc.tcp://127.0.0.1:4840/plant", 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"opc.tcp://127.0.0.1:4840/plant", "opc.tcp://127.0.0.1:4841/plant", "opc.tcp://127.0.0.1:4842/plant"}
	if !slices.Equal(eps, want) {
		t.Fatalf("endpoints %q, want %q", eps, want)
	}
	for _, bad := range []string{"nowhere", "opc.tcp://127.0.0.1", "%zz"} {
		if _, err := Endpoints(bad, 1); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Two PLCs of a fleet listen on their own ports, each with its own seed
// and certificate directory, and a client reads both.
func TestStartAllFleet(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	eps, err := Endpoints(fmt.Sprintf("opc.tcp://127.0.0.1:%d", port), 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	var ready []string
	plcs, err := StartAll(ctx, Config{Assets: 1, Tags: 2, Interval: 50 * time.Millisecond, Change: 1, Seed: 5, CertDir: dir},
		eps, func(ep string, p *PLC) { ready = append(ready, ep) })
	defer CloseAll(plcs, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ready, eps) || len(plcs) != 2 {
		t.Fatalf("ready %q of %d PLCs, want %q", ready, len(plcs), eps)
	}
	for i, p := range plcs {
		if p.Endpoint() != eps[i] || p.cfg.Seed != 5+uint64(i) {
			t.Errorf("PLC %d: endpoint %s, seed %d", i, p.Endpoint(), p.cfg.Seed)
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("plc%d", i+1))); err != nil {
			t.Errorf("PLC %d keeps no certificate under its own directory: %v", i, err)
		}
		c, err := gopcua.NewClient(p.Endpoint(), gopcua.AutoReconnect(false))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: ua.MustParseNodeID(p.NodeID(0, 0)), AttributeID: ua.AttributeIDValue}}})
		c.Close(ctx)
		if err != nil || res.Results[0].Status != ua.StatusOK {
			t.Fatalf("read %s on %s: %v", p.NodeID(0, 0), p.Endpoint(), err)
		}
	}
	if !CloseAll(plcs, 5*time.Second) {
		t.Fatal("PLCs without clients did not close within 5 s")
	}
	plcs = nil
	// A port already taken: the error names the endpoint, and the PLCs
	// started before it are returned to be closed.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := fmt.Sprintf("opc.tcp://127.0.0.1:%d", taken.Addr().(*net.TCPAddr).Port)
	started, err := StartAll(ctx, Config{Assets: 1, Tags: 1, Interval: time.Second}, []string{eps[0], bad}, nil)
	defer CloseAll(started, 5*time.Second)
	if err == nil || len(started) != 1 || !strings.Contains(err.Error(), bad) {
		t.Fatalf("started %d, err %v: want 1 started and an error naming %s", len(started), err, bad)
	}
}
