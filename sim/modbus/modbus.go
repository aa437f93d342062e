// Package modbus simulates Modbus TCP devices for tests and benchmarks:
// N devices on consecutive ports, each serving registers of every data type
// in every byte and word order, coils and discrete inputs, all changing at
// an interval, and keeping a record of every request it answered.
//
// Register map of device d (0-based) at tick k, the same for holding and
// input registers. For order o (0 ABCD: bytes and words big-endian,
// 1 CDAB: low word first, 2 BADC: bytes swapped, 3 DCBA: both), from
// address 100·o:
//
//	+0  uint16   k mod 65536
//	+1  int16    -1000 - (k mod 1000) - d
//	+2  uint32   70000 + 3k + d
//	+4  int32    -70000 - 3k - d
//	+6  uint64   2^40 + 5k + d
//	+10 int64    -2^40 - 5k - d
//	+14 float32  k + d + 0.5
//	+16 float64  k·10^6 + d + 0.25
//	+20 string   fmt.Sprintf("D%03d-%07d", d, k mod 10^7), 12 characters in 6 registers
//
// From address 1000, Registers registers hold uint16(k + i + 7d) (register
// 1000+i). Coil i is (k+i) mod 3 == 0, discrete input i is (k+i+d) mod 2 == 0,
// for i < Bits. Any other address answers exception 2 (illegal data
// address); a unit id other than Unit (or 0) answers exception 11.
package modbus

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mb "github.com/simonvetter/modbus"

	mbcommon "github.com/flowd/flowd/common/modbus"
)

// Layout constants (see the package comment).
const (
	OrderStride = 100
	BulkStart   = 1000
	layoutSize  = 26
	StringLen   = 6 // registers
)

// Offsets of each type within an order's area.
const (
	OffUint16  = 0
	OffInt16   = 1
	OffUint32  = 2
	OffInt32   = 4
	OffUint64  = 6
	OffInt64   = 10
	OffFloat32 = 14
	OffFloat64 = 16
	OffString  = 20
)

// Config configures a set of simulated devices.
type Config struct {
	Host      string        // listen host, default 127.0.0.1
	Port      int           // first device's port; device i listens on Port+i (0: any free port each)
	Devices   int           // default 1
	Registers int           // bulk registers from address 1000 (default 100)
	Bits      int           // coils and discrete inputs (default 64)
	Unit      uint8         // unit id served (default 1); 0 is always served too
	Interval  time.Duration // time between ticks (default 1s)
	Record    io.Writer     // when set, one JSON line per request answered
	Logger    *slog.Logger
}

// Request is one answered request, as recorded.
type Request struct {
	Time      time.Time `json:"t"`
	Device    int       `json:"device"`
	Unit      uint8     `json:"unit"`
	Func      uint8     `json:"fn"`
	Addr      uint16    `json:"addr"`
	Qty       uint16    `json:"qty"`
	Tick      uint64    `json:"tick"`
	Exception uint8     `json:"exception,omitempty"`
}

// Sim is a running set of devices.
type Sim struct {
	cfg   Config
	devs  []*Device
	tick  atomic.Uint64
	stop  chan struct{}
	wg    sync.WaitGroup
	recMu sync.Mutex
	enc   *json.Encoder
}

// Device is one simulated device.
type Device struct {
	sim      *Sim
	index    int
	addr     string
	srv      *mb.ModbusServer
	requests atomic.Int64
	mu       sync.Mutex
	fail     map[uint16]uint8 // holding address → exception to answer (tests)
}

// Start listens on every device's port and starts ticking.
func Start(cfg Config) (*Sim, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Devices <= 0 {
		cfg.Devices = 1
	}
	if cfg.Registers <= 0 {
		cfg.Registers = 100
	}
	if cfg.Bits <= 0 {
		cfg.Bits = 64
	}
	if cfg.Unit == 0 {
		cfg.Unit = 1
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Registers > 0x10000-BulkStart {
		return nil, fmt.Errorf("registers: at most %d", 0x10000-BulkStart)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sim{cfg: cfg, stop: make(chan struct{})}
	if cfg.Record != nil {
		s.enc = json.NewEncoder(cfg.Record)
	}
	for i := 0; i < cfg.Devices; i++ {
		port := 0
		if cfg.Port != 0 {
			port = cfg.Port + i
		}
		d := &Device{sim: s, index: i}
		if err := d.listen(net.JoinHostPort(cfg.Host, strconv.Itoa(port))); err != nil {
			s.Close()
			return nil, fmt.Errorf("device %d: %w", i, err)
		}
		s.devs = append(s.devs, d)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.tick.Add(1)
			}
		}
	}()
	return s, nil
}

func (d *Device) listen(addr string) error {
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		// the library takes a fixed address: find a free port first
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		addr = l.Addr().String()
		l.Close()
	}
	d.addr = addr
	return d.serve()
}

// serve starts a server on the device's address.
func (d *Device) serve() error {
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL: "tcp://" + d.addr, Timeout: 5 * time.Minute, MaxClients: 64,
		Logger: slog.NewLogLogger(d.sim.cfg.Logger.Handler(), slog.LevelDebug),
	}, d)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	d.srv = srv
	return nil
}

// Close stops every device.
func (s *Sim) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	for _, d := range s.devs {
		d.Stop()
	}
	s.wg.Wait()
}

// Devices lists the running devices.
func (s *Sim) Devices() []*Device { return s.devs }

// Tick is the current tick.
func (s *Sim) Tick() uint64 { return s.tick.Load() }

// Addr is the device's host:port.
func (d *Device) Addr() string { return d.addr }

// Requests is how many requests the device answered (exceptions included).
func (d *Device) Requests() int64 { return d.requests.Load() }

// Stop closes the device's listener and connections (a device switched off).
func (d *Device) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv != nil {
		d.srv.Stop()
		d.srv = nil
	}
}

// Restart listens again on the device's address.
func (d *Device) Restart() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.srv != nil {
		return nil
	}
	return d.serve()
}

// FailAt makes reads of holding register addr answer exception code (0
// clears it).
func (d *Device) FailAt(addr uint16, code uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail == nil {
		d.fail = map[uint16]uint8{}
	}
	if code == 0 {
		delete(d.fail, addr)
	} else {
		d.fail[addr] = code
	}
}

func (d *Device) record(unit, fn uint8, addr, qty uint16, tick uint64, err error) {
	d.requests.Add(1)
	s := d.sim
	if s.enc == nil {
		return
	}
	r := Request{Time: time.Now().UTC(), Device: d.index, Unit: unit, Func: fn, Addr: addr, Qty: qty, Tick: tick}
	if err != nil {
		r.Exception, _ = mbcommon.ExceptionCode(err)
	}
	s.recMu.Lock()
	s.enc.Encode(r)
	s.recMu.Unlock()
}

func (d *Device) checkUnit(unit uint8) error {
	if unit != 0 && unit != d.sim.cfg.Unit {
		return mb.ErrGWTargetFailedToRespond
	}
	return nil
}

// HandleCoils serves coils (reads only).
func (d *Device) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	k := d.sim.tick.Load()
	if req.IsWrite {
		d.record(req.UnitId, 15, req.Addr, req.Quantity, k, mb.ErrIllegalFunction)
		return nil, mb.ErrIllegalFunction
	}
	res, err := d.bits(req.UnitId, req.Addr, req.Quantity, k, func(i uint64) bool { return (k+i)%3 == 0 })
	d.record(req.UnitId, 1, req.Addr, req.Quantity, k, err)
	return res, err
}

// HandleDiscreteInputs serves discrete inputs.
func (d *Device) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	k := d.sim.tick.Load()
	dv := uint64(d.index)
	res, err := d.bits(req.UnitId, req.Addr, req.Quantity, k, func(i uint64) bool { return (k+i+dv)%2 == 0 })
	d.record(req.UnitId, 2, req.Addr, req.Quantity, k, err)
	return res, err
}

func (d *Device) bits(unit uint8, addr, qty uint16, k uint64, f func(uint64) bool) ([]bool, error) {
	if err := d.checkUnit(unit); err != nil {
		return nil, err
	}
	if int(addr)+int(qty) > d.sim.cfg.Bits {
		return nil, mb.ErrIllegalDataAddress
	}
	out := make([]bool, qty)
	for i := range out {
		out[i] = f(uint64(addr) + uint64(i))
	}
	return out, nil
}

// HandleHoldingRegisters serves holding registers (reads only).
func (d *Device) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	k := d.sim.tick.Load()
	if req.IsWrite {
		d.record(req.UnitId, 16, req.Addr, req.Quantity, k, mb.ErrIllegalFunction)
		return nil, mb.ErrIllegalFunction
	}
	d.mu.Lock()
	for a, code := range d.fail {
		if a >= req.Addr && int(a) < int(req.Addr)+int(req.Quantity) {
			d.mu.Unlock()
			err := mbcommon.ExceptionError(code)
			d.record(req.UnitId, 3, req.Addr, req.Quantity, k, err)
			return nil, err
		}
	}
	d.mu.Unlock()
	res, err := d.registers(req.UnitId, req.Addr, req.Quantity, k)
	d.record(req.UnitId, 3, req.Addr, req.Quantity, k, err)
	return res, err
}

// HandleInputRegisters serves input registers.
func (d *Device) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	k := d.sim.tick.Load()
	res, err := d.registers(req.UnitId, req.Addr, req.Quantity, k)
	d.record(req.UnitId, 4, req.Addr, req.Quantity, k, err)
	return res, err
}

func (d *Device) registers(unit uint8, addr, qty uint16, k uint64) ([]uint16, error) {
	if err := d.checkUnit(unit); err != nil {
		return nil, err
	}
	out := make([]uint16, qty)
	var layout [4][layoutSize]uint16
	built := [4]bool{}
	for i := range out {
		a := int(addr) + i
		switch {
		case a >= BulkStart && a < BulkStart+d.sim.cfg.Registers:
			out[i] = uint16(k + uint64(a-BulkStart) + 7*uint64(d.index))
		case a < 4*OrderStride && a%OrderStride < layoutSize:
			o := a / OrderStride
			if !built[o] {
				layout[o] = Layout(d.index, k, o)
				built[o] = true
			}
			out[i] = layout[o][a%OrderStride]
		default:
			return nil, mb.ErrIllegalDataAddress
		}
	}
	return out, nil
}

// Values are the logical values of device d at tick k.
type Values struct {
	U16 uint16
	I16 int16
	U32 uint32
	I32 int32
	U64 uint64
	I64 int64
	F32 float32
	F64 float64
	Str string
}

// ValuesAt computes device d's values at tick k.
func ValuesAt(d int, k uint64) Values {
	dd := uint64(d)
	return Values{
		U16: uint16(k),
		I16: int16(-1000 - int64(k%1000) - int64(d)),
		U32: uint32(70000 + 3*k + dd),
		I32: int32(-70000 - 3*int64(k) - int64(d)),
		U64: 1<<40 + 5*k + dd,
		I64: -(1 << 40) - 5*int64(k) - int64(d),
		F32: float32(k) + float32(d) + 0.5,
		F64: float64(k)*1e6 + float64(d) + 0.25,
		Str: fmt.Sprintf("D%03d-%07d", d%1000, k%10_000_000),
	}
}

// Layout encodes device d's values at tick k in order o (0 ABCD, 1 CDAB,
// 2 BADC, 3 DCBA) as the registers of one order's area.
func Layout(d int, k uint64, o int) [layoutSize]uint16 {
	v := ValuesAt(d, k)
	var regs [layoutSize]uint16
	wordLE, byteLE := o == 1 || o == 3, o == 2 || o == 3
	put := func(off int, b []byte) {
		n := len(b) / 2
		for i := 0; i < n; i++ {
			w := i
			if wordLE {
				w = n - 1 - i
			}
			hi, lo := b[2*i], b[2*i+1]
			if byteLE {
				hi, lo = lo, hi
			}
			regs[off+w] = uint16(hi)<<8 | uint16(lo)
		}
	}
	put(OffUint16, binary.BigEndian.AppendUint16(nil, v.U16))
	put(OffInt16, binary.BigEndian.AppendUint16(nil, uint16(v.I16)))
	put(OffUint32, binary.BigEndian.AppendUint32(nil, v.U32))
	put(OffInt32, binary.BigEndian.AppendUint32(nil, uint32(v.I32)))
	put(OffUint64, binary.BigEndian.AppendUint64(nil, v.U64))
	put(OffInt64, binary.BigEndian.AppendUint64(nil, uint64(v.I64)))
	put(OffFloat32, binary.BigEndian.AppendUint32(nil, math.Float32bits(v.F32)))
	put(OffFloat64, binary.BigEndian.AppendUint64(nil, math.Float64bits(v.F64)))
	// a string is characters in register order: word order does not apply
	s := []byte(v.Str)
	for i := 0; i < StringLen; i++ {
		hi, lo := s[2*i], s[2*i+1]
		if byteLE {
			hi, lo = lo, hi
		}
		regs[OffString+i] = uint16(hi)<<8 | uint16(lo)
	}
	return regs
}
