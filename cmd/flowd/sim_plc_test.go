package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
)

// flowd sim plc: its help gives the node id scheme, and the ids it gives
// name the same variable; it prints no library progress lines, and Ctrl-C
// with a client connected ends it at once (gopcua's server alone waits 10 s
// for the client's channel).
func TestSimPLCNodeIDsQuietAndQuickExit(t *testing.T) {
	_, _, help := flowdOut(t, nil, "sim", "plc", "-h")
	for _, want := range []string{"ns=2;s=Asset<a>.Tag<t>", "ns=2;i=<1000000+k>", "k = (a-1)*tags + (t-1)"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
	port := harness.FreePort(t)
	ep := fmt.Sprintf("opc.tcp://127.0.0.1:%d", port)
	cmd := exec.Command(harness.Flowd(t), "sim", "plc", "--listen", ep, "--assets", "2", "--tags", "3", "--interval", "100ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	ready, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(ready, "ns=2;s=Asset1.Tag1 … ns=2;s=Asset2.Tag3") {
		t.Fatalf("ready line %q (%v)\n%s", ready, err, stderr.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := gopcua.NewClient(ep, gopcua.AutoReconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// Asset2.Tag3 is k = 1*3 + 2 = 5: ns=2;i=1000005, an int32 counter.
	read := func(id string) (*ua.DataValue, error) {
		res, err := c.Read(ctx, &ua.ReadRequest{NodesToRead: []*ua.ReadValueID{{NodeID: ua.MustParseNodeID(id), AttributeID: ua.AttributeIDValue}}})
		if err != nil {
			return nil, err
		}
		return res.Results[0], nil
	}
	byName, err := read("ns=2;s=Asset2.Tag3")
	if err != nil {
		t.Fatal(err)
	}
	byNum, err := read("ns=2;i=1000005")
	if err != nil {
		t.Fatal(err)
	}
	if byName.Status != ua.StatusOK || byNum.Status != ua.StatusOK || byName.Value.Type() != ua.TypeIDInt32 || byNum.Value.Type() != ua.TypeIDInt32 {
		t.Fatalf("ns=2;s=Asset2.Tag3 %v %v, ns=2;i=1000005 %v %v: want two good int32s", byName.Status, byName.Value, byNum.Status, byNum.Value)
	}
	if n, s := byNum.Value.Value().(int32), byName.Value.Value().(int32); n < s {
		t.Errorf("the counter read by number (%d) is behind the one read by name before it (%d): not the same variable", n, s)
	}

	// The client stays connected while the simulator is interrupted.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("still running 5 s after SIGINT with a client connected\n%s", stderr.String())
	}
	for _, noise := range []string{"doing objects", "New Node Set", "Started listening"} {
		if strings.Contains(stderr.String(), noise) {
			t.Errorf("library progress line %q on stderr:\n%s", noise, stderr.String())
		}
	}
}
