package modbus

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowd/flowd/engine"
)

// Config is the modbus source's configuration.
type Config struct {
	Interval     time.Duration  `hcl:"interval" default:"1s" doc:"time between polls of a tag (a device or tag may set its own)"`
	Timeout      time.Duration  `hcl:"timeout" default:"2s" doc:"time to wait for one answer; a device that does not answer is reconnected"`
	ReconnectMin time.Duration  `hcl:"reconnect_min" default:"1s" doc:"first delay before reconnecting a device; doubles up to reconnect_max, with jitter"`
	ReconnectMax time.Duration  `hcl:"reconnect_max" default:"30s" doc:"longest delay between reconnection attempts"`
	ByteOrder    string         `hcl:"byte_order" default:"big" enum:"big|little" doc:"byte order inside a 16-bit register: big (AB, the Modbus standard) or little (BA)"`
	WordOrder    string         `hcl:"word_order" default:"big" enum:"big|little" doc:"register order of 32- and 64-bit values: big (high word first, ABCD) or little (low word first, CDAB)"`
	MaxRegisters int            `hcl:"max_registers" default:"125" doc:"most registers one read may ask for (1–125)"`
	MaxBits      int            `hcl:"max_bits" default:"2000" doc:"most coils or discrete inputs one read may ask for (1–2000)"`
	MaxGap       int            `hcl:"max_gap" default:"16" doc:"unused registers a read may span to join two tags into one request (bits: 16 × this); 0 joins only adjacent tags, for devices that refuse reads over holes"`
	Device       []DeviceConfig `hcl:"device,block" doc:"one Modbus TCP device (or one unit id behind a gateway); the label names it"`
}

// DeviceConfig is a device block.
type DeviceConfig struct {
	Name         string        `hcl:"name,label"`
	Endpoint     string        `hcl:"endpoint,required" doc:"host:port, or tcp://host:port"`
	UnitID       int           `hcl:"unit_id" default:"1" doc:"unit (slave) id, 0–255"`
	Asset        string        `hcl:"asset" doc:"asset of the device's points (default: the device name); replicas with service.shard split devices by it"`
	Interval     time.Duration `hcl:"interval" doc:"overrides the source's interval"`
	Timeout      time.Duration `hcl:"timeout" doc:"overrides the source's timeout"`
	ByteOrder    string        `hcl:"byte_order" doc:"overrides the source's byte_order (big, little)"`
	WordOrder    string        `hcl:"word_order" doc:"overrides the source's word_order (big, little)"`
	MaxRegisters int           `hcl:"max_registers" doc:"overrides the source's max_registers"`
	MaxBits      int           `hcl:"max_bits" doc:"overrides the source's max_bits"`
	MaxGap       int           `hcl:"max_gap" default:"-1" doc:"overrides the source's max_gap (-1: the source's)"`
	Tag          []TagConfig   `hcl:"tag,block" doc:"one value; the label is the tag name"`

	Pos engine.BlockPos
}

// TagConfig is a tag block.
type TagConfig struct {
	Name      string        `hcl:"name,label"`
	Table     string        `hcl:"table" default:"holding" enum:"holding|input|coil|discrete" doc:"holding registers (function 3), input registers (4), coils (1) or discrete inputs (2)"`
	Address   int           `hcl:"address,required" doc:"protocol address, 0–65535 (register 40001 is holding address 0)"`
	Type      string        `hcl:"type" doc:"int16, uint16, int32, uint32, int64, uint64, float32, float64, bool (a bit: coils, discrete inputs, or bit of a register), string; default uint16 for registers, bool for bits"`
	Bit       int           `hcl:"bit" default:"-1" doc:"type bool on a register: the bit, 0 (least significant) – 15"`
	Length    int           `hcl:"length" doc:"type string: its length in registers (two characters each)"`
	Count     int           `hcl:"count" default:"1" doc:"an array: count values of the type at consecutive addresses, emitted as tag[0] … tag[count-1]; they must fit below address 65536"`
	ByteOrder string        `hcl:"byte_order" doc:"overrides the device's byte_order (big, little)"`
	WordOrder string        `hcl:"word_order" doc:"overrides the device's word_order (big, little)"`
	Scale     float64       `hcl:"scale" default:"1" doc:"value = raw × scale + offset (numbers; a scaled value is a float)"`
	Offset    float64       `hcl:"offset" default:"0" doc:"see scale"`
	Interval  time.Duration `hcl:"interval" doc:"poll interval of this tag; tags of one device with the same interval form a group read together"`

	Pos engine.BlockPos
}

// table is a Modbus data table.
type table uint8

const (
	tHolding table = iota
	tInput
	tCoil
	tDiscrete
)

var tableNames = [...]string{"holding", "input", "coil", "discrete"}

func (t table) String() string { return tableNames[t] }
func (t table) bits() bool     { return t >= tCoil }

// dtype is a tag's data type.
type dtype uint8

const (
	dUint16 dtype = iota
	dInt16
	dUint32
	dInt32
	dUint64
	dInt64
	dFloat32
	dFloat64
	dBool
	dString
)

var dtypeNames = map[string]dtype{
	"uint16": dUint16, "int16": dInt16, "uint32": dUint32, "int32": dInt32, "uint64": dUint64, "int64": dInt64,
	"float32": dFloat32, "float64": dFloat64, "bool": dBool, "string": dString,
}

func (d dtype) String() string {
	for n, v := range dtypeNames {
		if v == d {
			return n
		}
	}
	return "?"
}

// words is the number of registers a numeric type takes.
func (d dtype) words() int {
	switch d {
	case dUint32, dInt32, dFloat32:
		return 2
	case dUint64, dInt64, dFloat64:
		return 4
	}
	return 1
}

// tag is a resolved tag.
type tag struct {
	name, asset string
	table       table
	addr        int
	typ         dtype
	size        int // registers, or 1 bit
	bit         int // bool in a register: 0–15; else -1
	byteLE      bool
	wordLE      bool
	scale       float64
	offset      float64
	scaled      bool
	interval    time.Duration
	pos         engine.BlockPos

	// the last string decoded, reused while the registers do not change
	lastRaw []byte
	lastStr string
}

func (t *tag) end() int { return t.addr + t.size }

// device is a resolved device.
type device struct {
	name, endpoint, asset string
	unit                  uint8
	timeout               time.Duration
	maxRegs, maxBits      int
	maxGap                int
	tags                  []*tag
}

func blame(p engine.BlockPos, attr string, format string, args ...any) error {
	return &engine.FieldError{Field: attr, Offset: -1, Err: fmt.Errorf(format, args...), Range: p.At(attr)}
}

// blameBlock blames a whole block (a duplicate, a block without content).
func blameBlock(p engine.BlockPos, kind string, format string, args ...any) error {
	r := p.Block
	return &engine.FieldError{Field: kind, Offset: -1, Err: fmt.Errorf(format, args...), Range: &r}
}

func fieldErr(field string, err error) error {
	return &engine.FieldError{Field: field, Offset: -1, Err: err}
}

func order(s, def string, p engine.BlockPos, attr string) (little bool, err error) {
	if s == "" {
		s = def
	}
	switch s {
	case "big":
		return false, nil
	case "little":
		return true, nil
	}
	return false, blame(p, attr, "%s must be big or little, not %q", attr, s)
}

// validate checks the config and resolves devices and tags. Every fault is
// blamed on the attribute that causes it.
func (c *Config) validate() ([]*device, error) {
	var bad engine.Problems
	if c.Interval <= 0 {
		bad = append(bad, fieldErr("interval", fmt.Errorf("must be positive")))
	}
	if c.Timeout <= 0 {
		bad = append(bad, fieldErr("timeout", fmt.Errorf("must be positive")))
	}
	if c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin {
		bad = append(bad, fieldErr("reconnect_max", fmt.Errorf("need 0 < reconnect_min ≤ reconnect_max")))
	}
	limits := len(bad)
	if c.MaxRegisters < 1 || c.MaxRegisters > 125 {
		bad = append(bad, fieldErr("max_registers", fmt.Errorf("must be 1–125 (the protocol's limit)")))
	}
	if c.MaxBits < 1 || c.MaxBits > 2000 {
		bad = append(bad, fieldErr("max_bits", fmt.Errorf("must be 1–2000 (the protocol's limit)")))
	}
	if c.MaxGap < 0 {
		bad = append(bad, fieldErr("max_gap", fmt.Errorf("must not be negative")))
	}
	if len(c.Device) == 0 {
		bad = append(bad, fieldErr("device", fmt.Errorf("no devices: add a device block")))
	}
	// The devices' tags are checked against these read limits: with one of
	// them wrong, every tag would be blamed for it too.
	if len(bad) > limits {
		return nil, bad.Err()
	}
	seen := map[string]engine.BlockPos{}
	var devs []*device
	for i := range c.Device {
		dc := &c.Device[i]
		if first, dup := seen[dc.Name]; dup {
			bad = append(bad, blameBlock(dc.Pos, "device", "device %q is already declared at %s", dc.Name, first.Block))
			continue
		}
		seen[dc.Name] = dc.Pos
		d, err := c.resolveDevice(dc)
		if err != nil {
			bad = append(bad, engine.SplitErrors(err)...)
			continue
		}
		devs = append(devs, d)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	return devs, nil
}

// maxTagsPerDevice bounds the tags of one device after arrays are expanded:
// every register of the address space, of each of the four tables.
const maxTagsPerDevice = 4 * 0x10000

// tagDefaults are the device-level settings a tag inherits.
type tagDefaults struct {
	interval             time.Duration
	byteOrder, wordOrder bool // little-endian
}

func (c *Config) resolveDevice(dc *DeviceConfig) (*device, error) {
	d, def, err := c.deviceSettings(dc)
	// The tags are checked against the device's settings: only once those
	// are right.
	if err != nil {
		return nil, err
	}
	if err := d.addTags(dc, def); err != nil {
		return nil, err
	}
	if err := checkOverlaps(d.tags); err != nil {
		return nil, err
	}
	return d, nil
}

// deviceSettings checks a device block's own settings and applies them over
// the source's; it returns what the device's tags inherit.
func (c *Config) deviceSettings(dc *DeviceConfig) (*device, tagDefaults, error) {
	var bad engine.Problems
	ep := strings.TrimPrefix(dc.Endpoint, "tcp://")
	if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
		bad = append(bad, blame(dc.Pos, "endpoint", "want host:port or tcp://host:port, got %q", dc.Endpoint))
	}
	if dc.UnitID < 0 || dc.UnitID > 255 {
		bad = append(bad, blame(dc.Pos, "unit_id", "must be 0–255"))
	}
	d := &device{name: dc.Name, endpoint: ep, asset: dc.Asset, unit: uint8(dc.UnitID), timeout: c.Timeout,
		maxRegs: c.MaxRegisters, maxBits: c.MaxBits, maxGap: c.MaxGap}
	if d.asset == "" {
		d.asset = dc.Name
	}
	if dc.Timeout < 0 {
		bad = append(bad, blame(dc.Pos, "timeout", "must be positive"))
	} else if dc.Timeout > 0 {
		d.timeout = dc.Timeout
	}
	if dc.MaxRegisters != 0 {
		if dc.MaxRegisters < 1 || dc.MaxRegisters > 125 {
			bad = append(bad, blame(dc.Pos, "max_registers", "must be 1–125 (the protocol's limit)"))
		}
		d.maxRegs = dc.MaxRegisters
	}
	if dc.MaxBits != 0 {
		if dc.MaxBits < 1 || dc.MaxBits > 2000 {
			bad = append(bad, blame(dc.Pos, "max_bits", "must be 1–2000 (the protocol's limit)"))
		}
		d.maxBits = dc.MaxBits
	}
	if dc.MaxGap >= 0 {
		d.maxGap = dc.MaxGap
	} else if dc.MaxGap != -1 {
		bad = append(bad, blame(dc.Pos, "max_gap", "must not be negative"))
	}
	def := tagDefaults{interval: c.Interval}
	if dc.Interval < 0 {
		bad = append(bad, blame(dc.Pos, "interval", "must be positive"))
	} else if dc.Interval > 0 {
		def.interval = dc.Interval
	}
	var err error
	if def.byteOrder, err = order(dc.ByteOrder, c.ByteOrder, dc.Pos, "byte_order"); err != nil {
		bad = append(bad, err)
	}
	if def.wordOrder, err = order(dc.WordOrder, c.WordOrder, dc.Pos, "word_order"); err != nil {
		bad = append(bad, err)
	}
	if len(dc.Tag) == 0 {
		bad = append(bad, blameBlock(dc.Pos, "device", "device %q has no tags: add tag blocks", dc.Name))
	}
	return d, def, bad.Err()
}

// addTags resolves the device's tag blocks in file order; a tag that is
// declared twice or does not resolve is reported and left out.
func (d *device) addTags(dc *DeviceConfig, def tagDefaults) error {
	var bad engine.Problems
	names := map[string]bool{}
	for i := range dc.Tag {
		tc := &dc.Tag[i]
		if names[tc.Name] {
			bad = append(bad, blameBlock(tc.Pos, "tag", "tag %q is declared twice in device %q", tc.Name, dc.Name))
			continue
		}
		names[tc.Name] = true
		t, err := resolveTag(tc, d.asset, def.interval, def.byteOrder, def.wordOrder)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if err := d.addTag(dc.Name, tc, t); err != nil {
			bad = append(bad, err)
		}
	}
	return bad.Err()
}

// addTag adds t, or with count > 1 one tag per array element, each named
// tag[i] at its own address.
func (d *device) addTag(devName string, tc *TagConfig, t *tag) error {
	if t.table.bits() && t.size > d.maxBits || !t.table.bits() && t.size > d.maxRegs {
		return blame(tc.Pos, "length", "tag needs %d registers, more than one read may ask for (max_registers %d)", t.size, d.maxRegs)
	}
	if tc.Count < 1 {
		return blame(tc.Pos, "count", "must be at least 1")
	}
	if tc.Count == 1 {
		d.tags = append(d.tags, t)
		return nil
	}
	if t.bit >= 0 {
		return blame(tc.Pos, "count", "an array of bits of a register: declare each bit as a tag")
	}
	// Compared before multiplying: a huge count must not wrap around.
	if tc.Count > 0x10000 || t.addr+tc.Count*t.size > 0x10000 {
		return blame(tc.Pos, "count", "%d values from address %d run past address 65535", tc.Count, t.addr)
	}
	if len(d.tags)+tc.Count > maxTagsPerDevice {
		return blame(tc.Pos, "count", "device %q would have more than %d tags", devName, maxTagsPerDevice)
	}
	for k := 0; k < tc.Count; k++ {
		e := *t
		e.name = tc.Name + "[" + strconv.Itoa(k) + "]"
		e.addr = t.addr + k*t.size
		d.tags = append(d.tags, &e)
	}
	return nil
}

func resolveTag(tc *TagConfig, asset string, interval time.Duration, devByte, devWord bool) (*tag, error) {
	t := &tag{name: tc.Name, asset: asset, addr: tc.Address, bit: -1, scale: tc.Scale, offset: tc.Offset, interval: interval, pos: tc.Pos}
	var err error
	if t.table, err = tagTable(tc); err != nil {
		return nil, err
	}
	typ := tc.Type
	if typ == "" {
		typ = "uint16"
		if t.table.bits() {
			typ = "bool"
		}
	}
	d, ok := dtypeNames[typ]
	if !ok {
		return nil, blame(tc.Pos, "type", "unknown type %q: use int16, uint16, int32, uint32, int64, uint64, float32, float64, bool or string", typ)
	}
	t.typ = d
	if t.table.bits() && d != dBool {
		return nil, blame(tc.Pos, "type", "a %s is one bit: its type is bool, not %s", t.table, typ)
	}
	if err := sizeTag(t, tc); err != nil {
		return nil, err
	}
	if tc.Length != 0 && d != dString {
		return nil, blame(tc.Pos, "length", "length is for type string")
	}
	if t.addr < 0 || t.addr > 0xFFFF {
		return nil, blame(tc.Pos, "address", "address %d is outside 0–65535", t.addr)
	}
	if t.end() > 0x10000 {
		return nil, blame(tc.Pos, "address", "%s at %d takes %d registers and runs past address 65535", typ, t.addr, t.size)
	}
	if (d == dBool || d == dString) && (tc.Scale != 1 || tc.Offset != 0) {
		return nil, blame(tc.Pos, "scale", "scale and offset are for numbers, not %s", typ)
	}
	t.scaled = tc.Scale != 1 || tc.Offset != 0
	if t.byteLE, err = order(tc.ByteOrder, boolOrder(devByte), tc.Pos, "byte_order"); err != nil {
		return nil, err
	}
	if t.wordLE, err = order(tc.WordOrder, boolOrder(devWord), tc.Pos, "word_order"); err != nil {
		return nil, err
	}
	if tc.Interval < 0 {
		return nil, blame(tc.Pos, "interval", "must be positive")
	} else if tc.Interval > 0 {
		t.interval = tc.Interval
	}
	return t, nil
}

// tagTable maps the table name of tc to the Modbus table it reads.
func tagTable(tc *TagConfig) (table, error) {
	switch tc.Table {
	case "holding":
		return tHolding, nil
	case "input":
		return tInput, nil
	case "coil":
		return tCoil, nil
	case "discrete":
		return tDiscrete, nil
	}
	return 0, blame(tc.Pos, "table", "must be holding, input, coil or discrete, not %q", tc.Table)
}

// sizeTag sets how many registers (or bits) t takes, and for a bool in a
// register which bit it is, once t's table and type are known.
func sizeTag(t *tag, tc *TagConfig) error {
	d := t.typ
	switch {
	case t.table.bits():
		t.size = 1
		if tc.Bit != -1 {
			return blame(tc.Pos, "bit", "bit selects a bit of a register; a %s is a bit already", t.table)
		}
	case d == dBool:
		if _, set := tc.Pos.Attrs["bit"]; !set && tc.Bit == -1 {
			return blame(tc.Pos, "type", "a bool in a register needs bit (0–15)")
		}
		if tc.Bit < 0 || tc.Bit > 15 {
			return blame(tc.Pos, "bit", "must be 0–15")
		}
		t.bit, t.size = tc.Bit, 1
	case d == dString:
		if tc.Length <= 0 {
			return blame(tc.Pos, "type", "a string needs length (its size in registers)")
		}
		t.size = tc.Length
	default:
		t.size = d.words()
		if tc.Bit != -1 {
			return blame(tc.Pos, "bit", "bit is for type bool")
		}
	}
	return nil
}

func boolOrder(little bool) string {
	if little {
		return "little"
	}
	return "big"
}

// checkOverlaps rejects two tags that read the same registers as different
// things (a float32 across an int16). The same value read twice (same type
// and order, say with another scale) and bits of a register are fine.
func checkOverlaps(tags []*tag) error {
	sorted := append([]*tag(nil), tags...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].table != sorted[j].table {
			return sorted[i].table < sorted[j].table
		}
		return sorted[i].addr < sorted[j].addr
	})
	for i, a := range sorted {
		if a.table.bits() || a.bit >= 0 {
			continue
		}
		for _, b := range sorted[i+1:] {
			if b.table != a.table || b.addr >= a.end() {
				break
			}
			if b.bit >= 0 {
				continue
			}
			if b.addr == a.addr && b.typ == a.typ && b.size == a.size && b.byteLE == a.byteLE && b.wordLE == a.wordLE {
				continue
			}
			later, earlier := a, b
			if posBefore(a.pos, b.pos) {
				later, earlier = b, a
			}
			return blame(later.pos, "address", "tag %q (%s, %s registers %d–%d) overlaps tag %q (%s, registers %d–%d, declared at %s) with a different type or byte order",
				later.name, later.typ, later.table, later.addr, later.end()-1, earlier.name, earlier.typ, earlier.addr, earlier.end()-1, earlier.pos.Block)
		}
	}
	return nil
}

func posBefore(a, b engine.BlockPos) bool {
	if a.Block.Filename != b.Block.Filename {
		return a.Block.Filename < b.Block.Filename
	}
	return a.Block.Start.Byte < b.Block.Start.Byte
}
