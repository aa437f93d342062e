package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/codec"
	"github.com/flowd/flowd/engine/pointexpr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Key modes: where a record's key comes from when no literal key is set.
const (
	KeyNone     = "none"
	KeyAsset    = "asset"
	KeyTag      = "tag"
	KeyAssetTag = "asset_tag" // "asset/tag"
)

// Header names set on records when headers are on.
const (
	HeaderTS    = "ts"    // source timestamp, RFC 3339 UTC
	HeaderAsset = "asset" // the point's (or the record's) asset
	HeaderTag   = "tag"   // the point's tag (json format)
)

// Encoding says how points become records.
type Encoding struct {
	Topic string
	// TopicExpr, when set, gives the topic per point (a codec framed per
	// point), or per group of points with the same topic (per batch, per asset).
	TopicExpr *pointexpr.Program
	// Codec encodes the records' values, framed as it says (engine/codec).
	Codec *engine.Codec
	Key   string // literal key, used when set
	KeyBy string // none, asset, tag, asset_tag (ignored when Key is set)
	// KeyExpr, when set, gives the key per point (json) or per asset from its
	// first point (asset_json).
	KeyExpr *pointexpr.Program
	Headers bool
	// MaxRecordBytes bounds a record's value: json_batch splits a batch into
	// several arrays under it; a single point over it is rejected.
	MaxRecordBytes int
}

// CheckEncoding validates the combination of format and key mode; the error
// names the attribute to blame.
func CheckEncoding(e *Encoding) (field string, err error) {
	if e.Codec == nil || e.Codec.Encode == nil {
		return "format", errors.New("no codec that encodes")
	}
	framing := e.Codec.Framing
	if e.KeyExpr != nil {
		switch {
		case e.Key != "" || (e.KeyBy != "" && e.KeyBy != KeyNone):
			return "key_expr", errors.New("set one of key, key_by and key_expr")
		case framing == engine.FrameBatch:
			return "key_expr", fmt.Errorf("%s writes one record per batch, so it can only have a literal key", e.Codec.Name)
		}
	}
	if e.Topic != "" && e.TopicExpr != nil {
		return "topic_expr", errors.New("set topic or topic_expr, not both")
	}
	if e.Topic == "" && e.TopicExpr == nil {
		return "topic", errors.New("set topic or topic_expr")
	}
	switch e.KeyBy {
	case "", KeyNone:
	case KeyAsset, KeyTag, KeyAssetTag:
		if e.Key != "" {
			return "key_by", errors.New("set key or key_by, not both")
		}
		if framing == engine.FrameBatch {
			return "key_by", fmt.Errorf("%s writes one record per batch, so it can only have a literal key", e.Codec.Name)
		}
		if framing == engine.FrameAsset && e.KeyBy != KeyAsset {
			return "key_by", fmt.Errorf("%s writes one record per asset: key_by can only be \"asset\"", e.Codec.Name)
		}
	default:
		return "key_by", fmt.Errorf("unknown key_by %q", e.KeyBy)
	}
	// A record is encoded whole in memory before it is produced.
	if e.MaxRecordBytes < 64 || e.MaxRecordBytes > 256<<20 {
		return "max_message_bytes", errors.New("must be between 64 bytes and 256MiB")
	}
	return "", nil
}

// CheckBufferedBytes is the rule for a sink's max_buffered_bytes: franz-go
// fails at once a record larger than its whole buffer, so the buffer holds
// at least twice the largest value (room for its key and headers), and at
// most 16 GiB.
func CheckBufferedBytes(buffered, maxMessage engine.Size) error {
	if buffered < 2*maxMessage || buffered > 16<<30 {
		return fmt.Errorf("must be between twice max_message_bytes (%d bytes) and 16GiB", 2*maxMessage)
	}
	return nil
}

// span locates a record's parts in the encoding buffer.
type span struct {
	topic           string // "": Encoding.Topic
	val, valEnd     int
	key, keyEnd     int // keyEnd < 0: no key
	ts, tsEnd       int
	asset, assetEnd int
	tag, tagEnd     int
	// The record's points: [p0, p0+pn) in the Write's points, or, when
	// copied, in the per-topic copy (scratchIdx maps those back).
	p0, pn int
	copied bool
}

// Writer produces batches of points through a franz-go client and waits for
// every record's acknowledgement. It is used by one goroutine at a time.
type Writer struct {
	Client *kgo.Client
	Enc    Encoding

	lastTS     int64 // the last header timestamp formatted, and its text
	lastTSText []byte
	topics     map[string]string // interned topic names from TopicExpr
	ptopics    []string
	scratch    []engine.Point
	scratchIdx []int // index in the Write's points of each scratch point
	orig       []engine.Point
	onReject   func(int, error)
	rejectFn   func([]engine.Point, error)
	buf        []byte
	spans      []span
	frames     []codec.Frame
	framer     codec.Framer
	recs       []kgo.Record
	hdrs       []kgo.RecordHeader
	failed     []bool // per record of the write in flight: its produce failed
}

// ErrTooLarge marks points whose encoding exceeds the record size limit.
var ErrTooLarge = codec.ErrTooLarge

// Write encodes points, produces every record and returns the number of
// records once all are acknowledged. Points that can never be written (a
// single point larger than the record limit, a failing topic or key
// expression) are passed to reject by their index in points and are not
// produced; the caller reports them to the engine. When records fail, the
// error is returned and, once every record has settled, retry (which may be
// nil) gets the index of each point of the records that failed: the others
// are written. Records stay buffered in the client after ctx ends; their
// memory is then not reused, and Write returns without calling retry (the
// caller retries every point not rejected).
func (w *Writer) Write(ctx context.Context, points []engine.Point, reject func(i int, err error), retry func(i int)) (int, error) {
	var (
		n    int
		err  error
		done = make(chan struct{})
	)
	w.start(ctx, points, reject, nil, func(k int, e error) { n, err = k, e; close(done) })
	select {
	case <-done:
	case <-ctx.Done():
		// The client may still hold these records: do not reuse their memory.
		w.buf, w.recs, w.hdrs, w.failed = nil, nil, nil, nil
		return 0, ctx.Err()
	}
	if err != nil && retry != nil {
		w.retryFailed(retry)
	}
	return n, err
}

// Start is Write without waiting: it encodes points, produces every record
// and returns; done runs once every record's promise has (from a client
// goroutine), with the number of records and the first error, after retry
// (as in Write) has had the points of the records that failed. The Writer's
// buffers hold the records until then: do not use it again before done.
func (w *Writer) Start(ctx context.Context, points []engine.Point, reject func(i int, err error), retry func(i int), done func(n int, err error)) {
	w.start(ctx, points, reject, retry, done)
}

func (w *Writer) start(ctx context.Context, points []engine.Point, reject func(i int, err error), retry func(i int), done func(n int, err error)) {
	n := w.prepare(points, reject)
	if n == 0 {
		done(0, nil)
		return
	}
	if cap(w.failed) < n {
		w.failed = make([]bool, n)
	}
	w.failed = w.failed[:n]
	clear(w.failed)
	st := &startState{w: w, recs: w.recs, failed: w.failed, retry: retry, done: done, n: n}
	st.left.Store(int64(n) + 1)
	promise := st.promise // one method value, not one per record
	for i := range w.recs {
		w.Client.Produce(ctx, &w.recs[i], promise)
	}
	promise(nil, nil)
}

// retryFailed passes the index of each point of a failed record to retry.
func (w *Writer) retryFailed(retry func(int)) {
	for i, failed := range w.failed {
		if !failed {
			continue
		}
		sp := &w.spans[i]
		for k := sp.p0; k < sp.p0+sp.pn; k++ {
			if sp.copied {
				retry(w.scratchIdx[k])
			} else {
				retry(k)
			}
		}
	}
}

// Pool starts writes that are in flight together (an engine.AsyncSink's
// WriteAsync), each encoding into a Writer of its own that goes back to the
// pool once its records have settled. A Pool belongs to one client: make a
// new one with a new client.
type Pool struct {
	Client *kgo.Client
	Enc    Encoding

	mu   sync.Mutex
	free []*Writer
}

// Start is Writer.Start with a Writer from the pool.
func (p *Pool) Start(ctx context.Context, points []engine.Point, reject func(i int, err error), retry func(i int), done func(n int, err error)) {
	p.mu.Lock()
	var w *Writer
	if n := len(p.free); n > 0 {
		w = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		w = &Writer{Client: p.Client, Enc: p.Enc}
	}
	p.mu.Unlock()
	w.Start(ctx, points, reject, retry, func(n int, err error) {
		p.mu.Lock()
		p.free = append(p.free, w)
		p.mu.Unlock()
		done(n, err)
	})
}

// startState settles one write's records: the promise only counts, records
// which records failed and keeps the first error; it never blocks.
type startState struct {
	left   atomic.Int64
	once   sync.Once
	first  error
	w      *Writer
	recs   []kgo.Record
	failed []bool
	retry  func(int)
	done   func(int, error)
	n      int
}

func (st *startState) promise(r *kgo.Record, err error) {
	if err != nil {
		st.once.Do(func() { st.first = fmt.Errorf("produce to %s: %w", r.Topic, err) })
		st.failed[indexIn(st.recs, r)] = true
	}
	if st.left.Add(-1) == 0 {
		if st.first != nil && st.retry != nil {
			st.w.retryFailed(st.retry)
		}
		st.done(st.n, st.first)
	}
}

// prepare encodes points into w.recs and returns how many records there are.
func (w *Writer) prepare(points []engine.Point, reject func(i int, err error)) int {
	w.orig, w.onReject = points, reject
	if w.rejectFn == nil {
		w.rejectFn = w.rejectPoints
	}
	w.encode(points, w.rejectFn)
	w.orig, w.onReject = nil, nil
	if len(w.spans) == 0 {
		return 0
	}
	n := len(w.spans)
	if cap(w.recs) < n {
		w.recs = make([]kgo.Record, n)
	}
	w.recs = w.recs[:n]
	nh := 0
	if w.Enc.Headers {
		nh = 3 * n
	}
	if cap(w.hdrs) < nh {
		w.hdrs = make([]kgo.RecordHeader, nh)
	}
	w.hdrs = w.hdrs[:0]
	buf := w.buf
	for i := range w.spans {
		sp := &w.spans[i]
		r := &w.recs[i]
		*r = kgo.Record{Topic: w.Enc.Topic, Value: buf[sp.val:sp.valEnd:sp.valEnd]}
		if sp.topic != "" {
			r.Topic = sp.topic
		}
		if sp.keyEnd >= 0 {
			r.Key = buf[sp.key:sp.keyEnd:sp.keyEnd]
		}
		if w.Enc.Headers {
			h0 := len(w.hdrs)
			if sp.tsEnd > sp.ts {
				w.hdrs = append(w.hdrs, kgo.RecordHeader{Key: HeaderTS, Value: buf[sp.ts:sp.tsEnd:sp.tsEnd]})
			}
			if sp.assetEnd > sp.asset {
				w.hdrs = append(w.hdrs, kgo.RecordHeader{Key: HeaderAsset, Value: buf[sp.asset:sp.assetEnd:sp.assetEnd]})
			}
			if sp.tagEnd > sp.tag {
				w.hdrs = append(w.hdrs, kgo.RecordHeader{Key: HeaderTag, Value: buf[sp.tag:sp.tagEnd:sp.tagEnd]})
			}
			if len(w.hdrs) > h0 {
				r.Headers = w.hdrs[h0:len(w.hdrs):len(w.hdrs)]
			}
		}
	}
	return n
}

// rejectPoints maps rejected points, which are sub-slices of the points
// passed to Write or of the per-topic scratch copy, back to their index.
func (w *Writer) rejectPoints(pts []engine.Point, err error) {
	if w.onReject == nil {
		return
	}
	for k := range pts {
		p := &pts[k]
		i := indexIn(w.orig, p)
		if i < 0 {
			if j := indexIn(w.scratch, p); j >= 0 {
				i = w.scratchIdx[j]
			}
		}
		if i >= 0 {
			w.onReject(i, err)
		}
	}
}

// indexIn is the index of the element p points to in s, or -1.
func indexIn[T any](s []T, p *T) int {
	if len(s) == 0 {
		return -1
	}
	var zero T
	off := uintptr(unsafe.Pointer(p)) - uintptr(unsafe.Pointer(&s[0]))
	i := off / unsafe.Sizeof(zero)
	if uintptr(unsafe.Pointer(p)) < uintptr(unsafe.Pointer(&s[0])) || i >= uintptr(len(s)) {
		return -1
	}
	return int(i)
}

// ErrExpr marks points whose topic or key expression failed.
var ErrExpr = errors.New("expression failed")

// encode fills w.buf and w.spans.
func (w *Writer) encode(points []engine.Point, reject func([]engine.Point, error)) {
	w.buf = w.buf[:0]
	w.spans = w.spans[:0]
	if w.framer.Codec != w.Enc.Codec || w.framer.MaxBytes != w.Enc.MaxRecordBytes {
		w.framer = codec.Framer{Codec: w.Enc.Codec, MaxBytes: w.Enc.MaxRecordBytes}
	}
	if w.Enc.TopicExpr == nil || w.Enc.Codec.Framing == engine.FramePoint {
		w.encodeTopic(points, "", reject)
		return
	}
	// One group of points per topic, in order of first appearance.
	w.ptopics = w.ptopics[:0]
	var order []string
	for i := range points {
		t, err := w.topicOf(&points[i])
		if err != nil {
			if reject != nil {
				reject(points[i:i+1], err)
			}
		}
		w.ptopics = append(w.ptopics, t)
		if t != "" && !slices.Contains(order, t) {
			order = append(order, t)
		}
	}
	if cap(w.scratch) < len(points) {
		w.scratch = make([]engine.Point, 0, len(points))
	}
	w.scratch = w.scratch[:0]
	w.scratchIdx = w.scratchIdx[:0]
	for _, t := range order {
		from := len(w.scratch)
		for i := range points {
			if w.ptopics[i] == t {
				w.scratchIdx = append(w.scratchIdx, i)
			}
		}
		group := w.scratchIdx[from:]
		if w.Enc.Codec.Framing == engine.FrameAsset {
			// The framer regroups the copy by asset in place, which would
			// leave scratchIdx naming other points: group it by asset here
			// (sorted, stable), so the framer finds it grouped already.
			slices.SortStableFunc(group, func(a, b int) int {
				return strings.Compare(points[a].Asset, points[b].Asset)
			})
		}
		for _, i := range group {
			w.scratch = append(w.scratch, points[i])
		}
		w.encodeTopic(w.scratch[from:], t, reject)
	}
}

// topicOf evaluates the topic expression, interning the result.
func (w *Writer) topicOf(p *engine.Point) (string, error) {
	t, err := w.Enc.TopicExpr.EvalString(p)
	if err == nil && t == "" {
		err = errors.New("empty topic")
	}
	if err != nil {
		return "", fmt.Errorf("%w: topic_expr: %v", ErrExpr, err)
	}
	if w.topics == nil {
		w.topics = map[string]string{}
	}
	if in, ok := w.topics[t]; ok {
		return in, nil
	}
	if len(w.topics) > 10000 {
		clear(w.topics)
	}
	w.topics[t] = t
	return t, nil
}

// encodeTopic encodes points bound for one topic ("": the fixed topic, or
// per point from TopicExpr when framed per point) and adds each record's key
// and headers.
func (w *Writer) encodeTopic(points []engine.Point, topic string, reject func([]engine.Point, error)) {
	frames := w.frames[:0]
	w.buf, frames = w.framer.Append(w.buf, frames, points, reject)
	framing := w.Enc.Codec.Framing
	for i := range frames {
		fr := &frames[i]
		p := &fr.Points[0]
		sp := span{topic: topic, val: fr.Start, valEnd: fr.End, keyEnd: -1, pn: len(fr.Points)}
		if sp.p0 = indexIn(w.orig, p); sp.p0 < 0 {
			sp.p0, sp.copied = indexIn(w.scratch, p), true
		}
		switch framing {
		case engine.FramePoint:
			if w.Enc.TopicExpr != nil {
				t, err := w.topicOf(p)
				if err != nil {
					if reject != nil {
						reject(fr.Points, err)
					}
					continue
				}
				sp.topic = t
			}
			if err := w.key(&sp, p); err != nil {
				if reject != nil {
					reject(fr.Points, err)
				}
				continue
			}
			if w.Enc.Headers {
				w.headers(&sp, p.TS, p.Asset, p.Tag)
			}
		case engine.FrameAsset:
			if err := w.key(&sp, p); err != nil {
				if reject != nil {
					reject(fr.Points, err)
				}
				continue
			}
			if w.Enc.Headers {
				w.headers(&sp, p.TS, p.Asset, "")
			}
		default:
			w.key(&sp, nil)
			if w.Enc.Headers {
				w.headers(&sp, p.TS, "", "")
			}
		}
		w.spans = append(w.spans, sp)
	}
	clear(frames) // keep no references to the caller's points
	w.frames = frames[:0]
}

// headers appends the header values of a record to the buffer.
func (w *Writer) headers(sp *span, ts int64, asset, tag string) {
	// Points of a batch often share a timestamp: format it once.
	if ts != w.lastTS || w.lastTSText == nil {
		w.lastTS = ts
		w.lastTSText = codec.AppendTime(w.lastTSText[:0], ts)
	}
	text := w.lastTSText[1 : len(w.lastTSText)-1] // without the quotes
	sp.ts = len(w.buf)
	w.buf = append(w.buf, text...)
	sp.tsEnd = len(w.buf)
	sp.asset = len(w.buf)
	w.buf = append(w.buf, asset...)
	sp.assetEnd = len(w.buf)
	sp.tag = len(w.buf)
	w.buf = append(w.buf, tag...)
	sp.tagEnd = len(w.buf)
}

// key appends the record key of p (nil for a whole batch) to the buffer.
func (w *Writer) key(sp *span, p *engine.Point) error {
	var asset, tag string
	if p != nil {
		asset, tag = p.Asset, p.Tag
	}
	switch {
	case w.Enc.Key != "":
		sp.key = len(w.buf)
		w.buf = append(w.buf, w.Enc.Key...)
	case w.Enc.KeyExpr != nil && p != nil:
		k, err := w.Enc.KeyExpr.EvalString(p)
		if err != nil {
			return fmt.Errorf("%w: key_expr: %v", ErrExpr, err)
		}
		sp.key = len(w.buf)
		w.buf = append(w.buf, k...)
	case w.Enc.KeyBy == KeyAsset:
		sp.key = len(w.buf)
		w.buf = append(w.buf, asset...)
	case w.Enc.KeyBy == KeyTag:
		sp.key = len(w.buf)
		w.buf = append(w.buf, tag...)
	case w.Enc.KeyBy == KeyAssetTag:
		sp.key = len(w.buf)
		w.buf = append(w.buf, asset...)
		w.buf = append(w.buf, '/')
		w.buf = append(w.buf, tag...)
	default:
		return nil
	}
	sp.keyEnd = len(w.buf)
	return nil
}
