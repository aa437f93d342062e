package engine

import (
	"context"
	"sync"
	"unsafe"
)

// Buffer sits between a sink's input and its writer. Push takes a batch
// (blocking or dropping when full, per policy); Pop returns the next batch to
// deliver, whose Ack the writer calls once the sink has taken it.
type Buffer interface {
	Push(ctx context.Context, b Batch) error
	// Pop blocks until a batch is available; false once the input is closed
	// and the buffer is empty, or ctx is done.
	Pop(ctx context.Context) (Batch, bool)
	// TryPop returns a batch without waiting.
	TryPop() (Batch, bool)
	CloseInput()
	Stats() BufferStats
}

// durableBuffer is implemented by buffers whose contents outlive the process
// (the disk buffer): what they hold at shutdown stays for the next run instead
// of being counted as dropped, and they are closed once the sink has stopped.
type durableBuffer interface {
	Durable() bool
	Close() error
}

func isDurable(b Buffer) bool {
	d, ok := b.(durableBuffer)
	return ok && d.Durable()
}

// BufferStats describes a buffer's backlog.
type BufferStats struct {
	Points int64 `json:"points"`
	Bytes  int64 `json:"bytes"`
	// OldestIngest is the engine clock of the oldest buffered point, 0 when
	// empty; negative for a point a disk buffer kept from a previous run.
	OldestIngest int64 `json:"-"`
}

// Map overheads for the estimate, from the Go runtime's layout (measured by
// TestEstimateBytesMatchesHeap): a map header plus, per entry, two string
// headers and the slot's share of control bytes and load-factor slack.
const (
	mapBytes      = 48
	attrSlotBytes = 48
)

// EstimateBytes approximates a batch's memory footprint: the points, their
// strings and their attrs. A map shared by consecutive points (a source's
// constant labels, fan-out copies) is counted once. The memory buffer's
// max_size counts it; a source that bounds its points in flight by bytes
// uses it too, so both speak of the same bytes. No allocation.
func EstimateBytes(points []Point) int64 {
	n := int64(len(points)) * int64(unsafe.Sizeof(Point{}))
	var last unsafe.Pointer
	for i := range points {
		p := &points[i]
		n += int64(len(p.Asset) + len(p.Tag) + len(p.Value.str))
		if len(p.Attrs) == 0 {
			continue
		}
		if m := *(*unsafe.Pointer)(unsafe.Pointer(&p.Attrs)); m != last {
			last = m
			n += attrsBytes(p.Attrs)
		}
	}
	return n
}

func attrsBytes(m map[string]string) int64 {
	n := int64(mapBytes + attrSlotBytes*len(m))
	for k, v := range m {
		n += int64(len(k) + len(v))
	}
	return n
}

// memBuffer is a bounded in-memory queue of batches.
type memBuffer struct {
	mu        sync.Mutex
	q         []Batch
	head      int
	points    int64
	bytes     int64
	sizes     []int64 // bytes per queued batch, parallel to q
	maxPoints int64
	maxBytes  int64
	policy    string
	closed    bool
	notEmpty  chan struct{}
	notFull   chan struct{}
	onDrop    func(n int)
}

func newMemBuffer(cfg BufferConfig, onDrop func(n int)) *memBuffer {
	return &memBuffer{
		maxPoints: int64(cfg.MaxPoints), maxBytes: int64(cfg.MaxSize), policy: cfg.WhenFull,
		notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1), onDrop: onDrop,
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (m *memBuffer) full(addPoints, addBytes int64) bool {
	if m.points == 0 {
		return false // a batch larger than the limit still goes through alone
	}
	return (m.maxPoints > 0 && m.points+addPoints > m.maxPoints) || (m.maxBytes > 0 && m.bytes+addBytes > m.maxBytes)
}

func (m *memBuffer) Push(ctx context.Context, b Batch) error {
	np, nb := int64(len(b.Points)), EstimateBytes(b.Points)
	m.mu.Lock()
	for m.full(np, nb) {
		switch m.policy {
		case "drop_newest":
			m.mu.Unlock()
			m.onDrop(len(b.Points))
			b.Ack(nil)
			return nil
		case "drop_oldest":
			old, _ := m.popLocked()
			m.mu.Unlock()
			m.onDrop(len(old.Points))
			old.Ack(nil)
			m.mu.Lock()
			continue
		}
		m.mu.Unlock()
		select {
		case <-m.notFull:
		case <-ctx.Done():
			return ctx.Err()
		}
		m.mu.Lock()
	}
	m.q = append(m.q, b)
	m.sizes = append(m.sizes, nb)
	m.points += np
	m.bytes += nb
	m.mu.Unlock()
	signal(m.notEmpty)
	return nil
}

func (m *memBuffer) popLocked() (Batch, bool) {
	if m.head == len(m.q) {
		return Batch{}, false
	}
	b := m.q[m.head]
	m.points -= int64(len(b.Points))
	m.bytes -= m.sizes[m.head]
	m.q[m.head] = Batch{}
	m.head++
	if m.head == len(m.q) {
		m.q, m.sizes, m.head = m.q[:0], m.sizes[:0], 0
	} else if m.head > 64 && m.head*2 > len(m.q) {
		k := copy(m.q, m.q[m.head:])
		copy(m.sizes, m.sizes[m.head:])
		m.q, m.sizes, m.head = m.q[:k], m.sizes[:k], 0
	}
	return b, true
}

func (m *memBuffer) TryPop() (Batch, bool) {
	m.mu.Lock()
	b, ok := m.popLocked()
	m.mu.Unlock()
	if ok {
		signal(m.notFull)
	}
	return b, ok
}

func (m *memBuffer) Pop(ctx context.Context) (Batch, bool) {
	for {
		m.mu.Lock()
		b, ok := m.popLocked()
		closed := m.closed
		m.mu.Unlock()
		if ok {
			signal(m.notFull)
			return b, true
		}
		if closed {
			return Batch{}, false
		}
		select {
		case <-m.notEmpty:
		case <-ctx.Done():
			return Batch{}, false
		}
	}
}

func (m *memBuffer) CloseInput() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	signal(m.notEmpty)
}

func (m *memBuffer) Stats() BufferStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := BufferStats{Points: m.points, Bytes: m.bytes}
	if m.head < len(m.q) && len(m.q[m.head].Points) > 0 {
		s.OldestIngest = m.q[m.head].Points[0].Ingest
	}
	return s
}
