package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
)

// mbPoint is a point as the file sink writes it, the value kept as its JSON
// text so 64-bit integers are compared exactly.
type mbPoint struct {
	Asset   string          `json:"asset"`
	Tag     string          `json:"tag"`
	Value   json.RawMessage `json:"value"`
	Quality string          `json:"quality"`
	Status  uint32          `json:"status"`
	TS      time.Time       `json:"ts"`
}

// The four byte/word orders both servers lay out from address 100·o.
var mbOrders = []struct{ name, byteO, wordO string }{
	{"abcd", "big", "big"}, {"cdab", "big", "little"}, {"badc", "little", "big"}, {"dcba", "little", "little"},
}

var mbTypes = []struct {
	name string
	off  int
}{{"uint16", 0}, {"int16", 1}, {"uint32", 2}, {"int32", 4}, {"uint64", 6}, {"int64", 10}, {"float32", 14}, {"float64", 16}}

// mbTypeTags declares, for holding and input registers, every numeric type
// and a string in every order, and bit 0 and bit 15 of the first register.
func mbTypeTags() string {
	var b strings.Builder
	for _, tbl := range []string{"holding", "input"} {
		for o, ord := range mbOrders {
			for _, ty := range mbTypes {
				fmt.Fprintf(&b, "      tag %q {\n        table = %q\n        address = %d\n        type = %q\n        byte_order = %q\n        word_order = %q\n      }\n",
					tbl+"_"+ord.name+"_"+ty.name, tbl, 100*o+ty.off, ty.name, ord.byteO, ord.wordO)
			}
			fmt.Fprintf(&b, "      tag %q {\n        table = %q\n        address = %d\n        type = \"string\"\n        length = 6\n        byte_order = %q\n      }\n",
				tbl+"_"+ord.name+"_string", tbl, 100*o+20, ord.byteO)
			for _, bit := range []int{0, 15} {
				fmt.Fprintf(&b, "      tag %q {\n        table = %q\n        address = %d\n        type = \"bool\"\n        bit = %d\n        byte_order = %q\n      }\n",
					fmt.Sprintf("%s_%s_bit%d", tbl, ord.name, bit), tbl, 100*o, bit, ord.byteO)
			}
		}
	}
	return b.String()
}

// mbCheck compares a point's JSON value with the expected value exactly.
func mbCheck(t *testing.T, p mbPoint, want any) {
	t.Helper()
	raw := string(p.Value)
	ok := false
	switch w := want.(type) {
	case int64:
		ok = raw == strconv.FormatInt(w, 10)
	case uint64:
		ok = raw == strconv.FormatUint(w, 10)
	case float64:
		f, err := strconv.ParseFloat(raw, 64)
		ok = err == nil && f == w
	case string:
		var s string
		ok = json.Unmarshal(p.Value, &s) == nil && s == w
	case bool:
		ok = raw == strconv.FormatBool(w)
	}
	if !ok {
		t.Errorf("%s/%s: got %s, want %v (%T)", p.Asset, p.Tag, raw, want, want)
	}
}

// readPlan runs flowd validate --verbose and returns each device's planned
// reads per cycle as "fn addr qty" → count.
func readPlan(t *testing.T, cfg string) map[string]map[string]int {
	t.Helper()
	out, err := exec.Command(harness.Flowd(t), "validate", "--verbose", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	fn := map[string]int{"coil": 1, "discrete": 2, "holding": 3, "input": 4}
	devRe := regexp.MustCompile(`^device "([^"]+)"`)
	readRe := regexp.MustCompile(`^\s+read (\w+)\s+(\d+) \+(\d+)`)
	plan := map[string]map[string]int{}
	dev := ""
	for _, line := range strings.Split(string(out), "\n") {
		if m := devRe.FindStringSubmatch(line); m != nil {
			dev = m[1]
			plan[dev] = map[string]int{}
		} else if m := readRe.FindStringSubmatch(line); m != nil {
			plan[dev][fmt.Sprintf("%d %s %s", fn[m[1]], m[2], m[3])]++
		}
	}
	if len(plan) == 0 {
		t.Fatalf("no plan in:\n%s", out)
	}
	return plan
}

type mbRequest struct {
	Device int    `json:"device"`
	Unit   int    `json:"unit"`
	Fn     int    `json:"fn"`
	Addr   int    `json:"addr"`
	Qty    int    `json:"qty"`
	Tick   uint64 `json:"tick"`
	Exc    int    `json:"exception"`
}

// startSimModbus runs `flowd sim modbus` on a free port and waits until
// it listens.
func startSimModbus(t *testing.T, port int, args ...string) *exec.Cmd {
	t.Helper()
	full := append([]string{"sim", "modbus", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	cmd := exec.Command(harness.Flowd(t), full...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ready") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("flowd sim modbus did not start")
	}
	return cmd
}

// TestModbusSim reads every type in every order from `flowd sim modbus`,
// checks each value against the simulator's documented formulas computed
// here, checks that the devices were sent exactly the planned reads (their
// request record), and that a unit id the device does not serve gives bad
// points with the exception code.
func TestModbusSim(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	port := consecutivePorts(t, 2) // the simulator's devices listen on consecutive ports
	record := filepath.Join(dir, "requests.jsonl")
	startSimModbus(t, port, "--devices", "2", "--interval", "150ms", "--record", record)
	out := filepath.Join(dir, "points.jsonl")
	cfg := harness.WriteFile(t, dir, "modbus.hcl", fmt.Sprintf(`
pipeline "modbus" {
  source "modbus" "sim" {
    interval = "200ms"
    device "d0" {
      endpoint = "127.0.0.1:%[1]d"
%[2]s
      tag "coil0" {
        table   = "coil"
        address = 0
      }
      tag "coil1" {
        table   = "coil"
        address = 1
      }
      tag "coil2" {
        table   = "coil"
        address = 2
      }
      tag "di5" {
        table   = "discrete"
        address = 5
      }
      tag "bulk0" {
        address = 1000
      }
      tag "bulk99" {
        address  = 1099
        interval = "100ms"
      }
    }
    device "d1" {
      endpoint = "127.0.0.1:%[3]d"
%[2]s
    }
    device "wrong_unit" {
      endpoint = "127.0.0.1:%[1]d"
      unit_id  = 7
      tag "x" {
        address = 0
      }
    }
  }
  sink "file" "out" {
    inputs = [source.sim]
    path   = %[4]q
  }
}
`, port, mbTypeTags(), port+1, out))
	plan := readPlan(t, cfg)
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 30*time.Second, func() bool { return len(harness.ReadJSONL[mbPoint](t, out)) > 2000 }, "too few points")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[mbPoint](t, out)
	reqs := harness.ReadJSONL[mbRequest](t, record)

	t.Run("values", func(t *testing.T) {
		// tick of each read: the uint16 of the same area, read in the same request (same ts)
		type key struct {
			asset, area string
			ts          int64
		}
		ticks := map[key]uint64{}
		for _, pt := range pts {
			if strings.HasSuffix(pt.Tag, "_uint16") && pt.Quality == "good" {
				k, _ := strconv.ParseUint(string(pt.Value), 10, 64)
				ticks[key{pt.Asset, strings.TrimSuffix(pt.Tag, "_uint16"), pt.TS.UnixNano()}] = k
			}
		}
		checked := 0
		for _, pt := range pts {
			if pt.Asset == "wrong_unit" {
				continue
			}
			if pt.Quality != "good" {
				t.Fatalf("%s/%s: %s status %d", pt.Asset, pt.Tag, pt.Quality, pt.Status)
			}
			parts := strings.Split(pt.Tag, "_")
			if len(parts) != 3 {
				continue
			}
			k, ok := ticks[key{pt.Asset, parts[0] + "_" + parts[1], pt.TS.UnixNano()}]
			if !ok {
				t.Fatalf("%s/%s: no uint16 read with it", pt.Asset, pt.Tag)
			}
			d := int64(0)
			if pt.Asset == "d1" {
				d = 1
			}
			// the formulas of the simulator's register map (package sim/modbus)
			ki := int64(k)
			var want any
			switch parts[2] {
			case "uint16":
				want = ki % 65536
			case "int16":
				want = -1000 - ki%1000 - d
			case "uint32":
				want = 70000 + 3*ki + d
			case "int32":
				want = -70000 - 3*ki - d
			case "uint64":
				want = int64(1)<<40 + 5*ki + d
			case "int64":
				want = -(int64(1) << 40) - 5*ki - d
			case "float32":
				want = float64(float32(ki) + float32(d) + 0.5)
			case "float64":
				want = float64(ki)*1e6 + float64(d) + 0.25
			case "string":
				want = fmt.Sprintf("D%03d-%07d", d, ki%10_000_000)
			case "bit0":
				want = ki&1 == 1
			case "bit15":
				want = ki>>15&1 == 1
			}
			mbCheck(t, pt, want)
			checked++
		}
		if checked < 2*2*4*11*3 {
			t.Fatalf("checked %d values, want at least 3 polls' worth", checked)
		}
		// bits and bulk registers, at the tick recorded for that request
		for _, pt := range pts {
			if pt.Asset != "d0" || strings.Contains(pt.Tag, "_") {
				continue
			}
			if pt.Quality != "good" {
				t.Fatalf("%s: %s", pt.Tag, pt.Quality)
			}
		}
	})

	t.Run("requests are the plan", func(t *testing.T) {
		devIndex := map[int]string{0: "d0", 1: "d1"}
		seen := map[string]map[string]int{}
		for _, r := range reqs {
			dev := devIndex[r.Device]
			if r.Unit == 7 {
				dev = "wrong_unit"
			}
			if seen[dev] == nil {
				seen[dev] = map[string]int{}
			}
			seen[dev][fmt.Sprintf("%d %d %d", r.Fn, r.Addr, r.Qty)]++
		}
		for dev, reads := range seen {
			for read, n := range reads {
				if plan[dev][read] == 0 {
					t.Errorf("device %s was sent %q (%d times), which is not in the plan %v", dev, read, n, plan[dev])
				}
			}
		}
		// each read of a group is sent as often as the group was polled:
		// no retries, no split reads; polls counted from the points written
		polls := map[string]int{} // "asset tag" → points
		for _, pt := range pts {
			polls[pt.Asset+" "+pt.Tag]++
		}
		for dev, reads := range plan {
			for read := range reads {
				n := seen[dev][read]
				if n == 0 {
					t.Errorf("device %s: planned read %q never sent", dev, read)
				}
			}
		}
		// d0's 200ms group: 2 areas × 4 orders of registers, coils, discrete, bulk0
		slow := polls["d0 holding_abcd_uint16"]
		for read, n := range seen["d0"] {
			if read == "3 1099 1" {
				continue // the 100ms group
			}
			// one more request than polls written: a poll cut short by the stop
			if n < slow || n > slow+1 {
				t.Errorf("d0 read %q sent %d times for %d polls", read, n, slow)
			}
		}
		if fast := seen["d0"]["3 1099 1"]; fast < polls["d0 bulk99"] || fast > polls["d0 bulk99"]+1 || fast <= slow {
			t.Errorf("100ms group: %d requests, %d polls written, slow group %d polls", fast, polls["d0 bulk99"], slow)
		}
	})

	t.Run("exception is bad with its code", func(t *testing.T) {
		n := 0
		for _, pt := range pts {
			if pt.Asset == "wrong_unit" {
				if pt.Quality != "bad" || pt.Status != 11 {
					t.Fatalf("wrong_unit/x: %s status %d, want bad 11 (gateway target failed to respond)", pt.Quality, pt.Status)
				}
				n++
			}
		}
		if n < 3 {
			t.Fatalf("%d points from the wrong unit id", n)
		}
	})
}

// TestModbusInterop reads every type in every order from a pymodbus server
// (another stack; values encoded with Python's struct) and checks each
// against the constants of e2e/modbus_interop_server.py, the requests it
// logged against the plan, and its exception answers as bad points.
func TestModbusInterop(t *testing.T) {
	addr := harness.Require(t, "FLOWD_TEST_MODBUS_INTEROP")
	logPath := harness.Require(t, "FLOWD_TEST_MODBUS_INTEROP_LOG")
	dir := t.TempDir()
	out := filepath.Join(dir, "points.jsonl")
	cfg := harness.WriteFile(t, dir, "interop.hcl", fmt.Sprintf(`
pipeline "interop" {
  source "modbus" "py" {
    interval = "200ms"
    device "py" {
      endpoint = %[1]q
%[2]s
      tag "coil0" {
        table   = "coil"
        address = 0
      }
      tag "coil3" {
        table   = "coil"
        address = 3
      }
      tag "coil6" {
        table   = "coil"
        address = 6
      }
      tag "coil15" {
        table   = "coil"
        address = 15
      }
      tag "di1" {
        table   = "discrete"
        address = 1
      }
      tag "di4" {
        table   = "discrete"
        address = 4
      }
      tag "di5" {
        table   = "discrete"
        address = 5
      }
      tag "busy" {
        address = 500
      }
      tag "missing" {
        table   = "input"
        address = 40
        type    = "float32"
      }
      tag "scaled" {
        address = 1
        type    = "int16"
        scale   = 0.01
        offset  = 5
      }
    }
  }
  sink "file" "out" {
    inputs = [source.py]
    path   = %[3]q
  }
}
`, addr, mbTypeTags(), out))
	plan := readPlan(t, cfg)["py"]
	logStart := int64(0)
	if st, err := os.Stat(logPath); err == nil {
		logStart = st.Size()
	}
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	harness.Eventually(t, 30*time.Second, func() bool { return len(harness.ReadJSONL[mbPoint](t, out)) > 1000 }, "too few points")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[mbPoint](t, out)

	// the constants of modbus_interop_server.py
	want := map[string]any{
		"uint16": int64(51234), "int16": int64(-12345), "uint32": int64(3000000000), "int32": int64(-2000000001),
		// beyond int64: exact, as OPC UA's UInt64
		"uint64": uint64(12345678901234567890), "int64": int64(-98765432109876543),
		"float32": -1234.5, "float64": math.Pi, "string": "pymodbus-42!",
		"bit0": 51234&1 == 1, "bit15": 51234>>15&1 == 1,
	}
	coils := []bool{true, false, true, true, false, false, true, false, false, true, false, false, false, false, true, true}
	discrete := []bool{false, true, true, false, true, false, false, true, true, true, false, true, false, false, false, true}
	checked := 0
	for _, pt := range pts {
		parts := strings.Split(pt.Tag, "_")
		switch {
		case pt.Tag == "busy":
			if pt.Quality != "bad" || pt.Status != 6 {
				t.Fatalf("busy: %s status %d, want bad 6 (server busy)", pt.Quality, pt.Status)
			}
		case pt.Tag == "missing":
			if pt.Quality != "bad" || pt.Status != 2 {
				t.Fatalf("missing: %s status %d, want bad 2 (illegal data address)", pt.Quality, pt.Status)
			}
		case pt.Quality != "good":
			t.Fatalf("%s: %s status %d", pt.Tag, pt.Quality, pt.Status)
		case pt.Tag == "scaled":
			mbCheck(t, pt, -12345*0.01+5)
		case strings.HasPrefix(pt.Tag, "coil"):
			i, _ := strconv.Atoi(strings.TrimPrefix(pt.Tag, "coil"))
			mbCheck(t, pt, coils[i])
		case strings.HasPrefix(pt.Tag, "di"):
			i, _ := strconv.Atoi(strings.TrimPrefix(pt.Tag, "di"))
			mbCheck(t, pt, discrete[i])
		default:
			mbCheck(t, pt, want[parts[2]])
		}
		checked++
	}
	if checked < 3*(2*4*11+10) {
		t.Fatalf("only %d points", checked)
	}

	// the server's own log of the requests it received
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Seek(logStart, 0)
	got := map[string]int{}
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct{ Fn, Addr, Qty int }
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		got[fmt.Sprintf("%d %d %d", r.Fn, r.Addr, r.Qty)]++
		total++
	}
	// The plan merges input registers 0–25 with the missing float32 at 40
	// (a gap of 14 < max_gap 16). pymodbus refuses that read (illegal data
	// address), once; flowd then splits it into its runs of adjacent tags,
	// 0+26 and 40+2, for good.
	merged, parts := "4 0 42", []string{"4 0 26", "4 40 2"}
	if plan[merged] != 1 {
		t.Fatalf("plan has no merged read %q: %v", merged, plan)
	}
	if got[merged] != 1 {
		t.Errorf("merged read sent %d times, want once before it is split", got[merged])
	}
	perCycle := 0
	for _, n := range plan {
		perCycle += n
	}
	perCycle++ // the merged read became two
	polls := 0
	for _, pt := range pts {
		if pt.Tag == "busy" {
			polls++
		}
	}
	for read, n := range got {
		if plan[read] == 0 && !slices.Contains(parts, read) {
			t.Errorf("server received %q (%d times), not in the plan %v", read, n, plan)
		}
	}
	if total < polls*perCycle+1 || total > (polls+1)*perCycle+1 {
		t.Fatalf("server received %d requests for %d polls of %d reads (+1 refused merged read)", total, polls, perCycle)
	}
	t.Logf("%d polls × %d reads per cycle; the server logged %d requests", polls, perCycle, total)
}

// TestModbusDeviceRestart kills a simulated device and starts it again:
// its tags turn bad (status 10 or 11) and then good again, while flowd keeps
// running.
func TestModbusDeviceRestart(t *testing.T) {
	concurrent(t)
	dir := t.TempDir()
	port := harness.FreePort(t)
	sim := startSimModbus(t, port, "--interval", "100ms")
	out := filepath.Join(dir, "points.jsonl")
	cfg := harness.WriteFile(t, dir, "restart.hcl", fmt.Sprintf(`
pipeline "restart" {
  source "modbus" "m" {
    interval      = "100ms"
    timeout       = "500ms"
    reconnect_min = "100ms"
    reconnect_max = "500ms"
    device "dev" {
      endpoint = "127.0.0.1:%d"
      tag "counter" {
        address = 0
      }
    }
  }
  sink "file" "out" {
    inputs = [source.m]
    path   = %q
  }
}
`, port, out))
	p := harness.Start(t, "--data-dir", filepath.Join(dir, "data"), cfg)
	count := func(q string) int {
		n := 0
		for _, pt := range harness.ReadJSONL[mbPoint](t, out) {
			if pt.Quality == q {
				n++
			}
		}
		return n
	}
	harness.Eventually(t, 20*time.Second, func() bool { return count("good") >= 5 }, "no good points")
	sim.Process.Signal(syscall.SIGKILL)
	sim.Wait()
	harness.Eventually(t, 20*time.Second, func() bool { return count("bad") >= 1 }, "no bad point after the device died")
	goodBefore := count("good")
	time.Sleep(time.Second) // flowd keeps retrying meanwhile
	startSimModbus(t, port, "--interval", "100ms")
	harness.Eventually(t, 20*time.Second, func() bool { return count("good") >= goodBefore+5 }, "no good points after the device came back")
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if n := harness.Sum(m, "flowd_modbus_reconnects_total"); n < 1 {
		t.Fatalf("reconnects_total = %v", n)
	}
	if p.Exited() {
		t.Fatal("flowd exited")
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("flowd exit code %d", code)
	}
	pts := harness.ReadJSONL[mbPoint](t, out)
	// good … bad (once, status 10 or 11) … good
	state, bad := "good", 0
	for _, pt := range pts {
		switch {
		case pt.Quality == "bad":
			if pt.Status != 10 && pt.Status != 11 {
				t.Fatalf("bad point with status %d", pt.Status)
			}
			if state != "good" {
				t.Fatal("two bad points in a row: an outage is reported once")
			}
			state = "bad"
			bad++
		case state == "bad":
			state = "back"
		}
	}
	if bad != 1 || state != "back" {
		t.Fatalf("sequence ended in state %s with %d bad points", state, bad)
	}
}
