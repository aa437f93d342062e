package modbus

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
)

func client(t *testing.T, addr string, unit uint8) *mb.ModbusClient {
	t.Helper()
	c, err := mb.NewClient(&mb.ClientConfiguration{URL: "tcp://" + addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.SetUnitId(unit)
	if err := c.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServesLayoutAndRecords reads the ABCD area with the library's own
// typed reads (its big-endian decoding, not ours), checks the values
// against ValuesAt at the recorded tick, and checks the record and the
// exceptions for a hole and a unit id not served.
func TestServesLayoutAndRecords(t *testing.T) {
	var rec bytes.Buffer
	sim, err := Start(Config{Devices: 2, Interval: time.Hour, Record: &rec})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c := client(t, sim.Devices()[1].Addr(), 1)
	u32, err := c.ReadUint32(OffUint32, mb.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	f64, err := c.ReadFloat64(OffFloat64, mb.INPUT_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.ReadBytes(OffString, 2*StringLen, mb.HOLDING_REGISTER)
	if err != nil {
		t.Fatal(err)
	}
	want := ValuesAt(1, 0)
	if u32 != want.U32 || f64 != want.F64 || string(raw) != want.Str {
		t.Fatalf("got %d %v %q, want %d %v %q", u32, f64, raw, want.U32, want.F64, want.Str)
	}
	// CDAB: the library's low-word-first decoding
	c.SetEncoding(mb.BIG_ENDIAN, mb.LOW_WORD_FIRST)
	f32, err := c.ReadFloat32(OrderStride+OffFloat32, mb.HOLDING_REGISTER)
	if err != nil || f32 != want.F32 {
		t.Fatalf("CDAB float32: %v %v, want %v", f32, err, want.F32)
	}
	if _, err := c.ReadRegisters(30, 1, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrIllegalDataAddress) {
		t.Fatalf("hole: %v", err)
	}
	other := client(t, sim.Devices()[1].Addr(), 9)
	if _, err := other.ReadRegisters(0, 1, mb.HOLDING_REGISTER); !errors.Is(err, mb.ErrGWTargetFailedToRespond) {
		t.Fatalf("unit 9: %v", err)
	}
	var reqs []Request
	dec := json.NewDecoder(&rec)
	for dec.More() {
		var r Request
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, r)
	}
	if len(reqs) != 6 || reqs[0].Device != 1 || reqs[0].Func != 3 || reqs[0].Addr != OffUint32 || reqs[0].Qty != 2 ||
		reqs[4].Exception != 2 || reqs[5].Exception != 11 || reqs[5].Unit != 9 {
		t.Fatalf("record: %+v", reqs)
	}
	if sim.Devices()[1].Requests() != 6 || sim.Devices()[0].Requests() != 0 {
		t.Fatal("request counters")
	}
}

// TestLayoutDCBA decodes the DCBA area by hand: every byte reversed.
func TestLayoutDCBA(t *testing.T) {
	regs := Layout(3, 77, 3)
	var b []byte
	for _, r := range regs[OffFloat64 : OffFloat64+4] {
		b = binary.BigEndian.AppendUint16(b, r)
	}
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	if got, want := math.Float64frombits(binary.BigEndian.Uint64(b)), ValuesAt(3, 77).F64; got != want {
		t.Fatalf("DCBA float64: %v, want %v", got, want)
	}
}

// TestFailAtAnswersAndRecordsItsCode checks that every exception code FailAt
// takes is what the client gets and what the record says.
func TestFailAtAnswersAndRecordsItsCode(t *testing.T) {
	var rec bytes.Buffer
	sim, err := Start(Config{Interval: time.Hour, Record: &rec})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	dev := sim.Devices()[0]
	c := client(t, dev.Addr(), 1)
	codes := []uint8{1, 2, 3, 4, 5, 6, 8, 10, 11}
	wantErr := []error{mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue, mb.ErrServerDeviceFailure,
		mb.ErrAcknowledge, mb.ErrServerDeviceBusy, mb.ErrMemoryParityError, mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond}
	for i, code := range codes {
		dev.FailAt(1000, code)
		if _, err := c.ReadRegisters(1000, 1, mb.HOLDING_REGISTER); !errors.Is(err, wantErr[i]) {
			t.Errorf("code %d: client got %v, want %v", code, err, wantErr[i])
		}
	}
	dec := json.NewDecoder(&rec)
	for i := 0; dec.More(); i++ {
		var r Request
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if i >= len(codes) || r.Exception != codes[i] {
			t.Errorf("record %d: exception %d, want code %v", i, r.Exception, codes[min(i, len(codes)-1)])
		}
	}
}
