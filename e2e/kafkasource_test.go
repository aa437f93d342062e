package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowd/flowd/e2e/harness"
	"github.com/flowd/flowd/engine"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaSourcePipeline is a kafka source in group into a file sink at out,
// with dead letters to dead; extra goes into the source block.
func kafkaSourcePipeline(brokers, topic, group, out, dead, extra string) string {
	return kafkaGroupPipeline(brokers, topic, group, "    session_timeout = \"10s\"\n"+extra, fmt.Sprintf(`  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
  sink "file" "dead" {
    path = %q
  }
`, out, dead))
}

// kafkaGroupPipeline is a kafka source "in" in group feeding sinks, the
// sink blocks, one of which is "dead" (the dead-letter sink); extra goes
// into the source block.
func kafkaGroupPipeline(brokers, topic, group, extra, sinks string) string {
	return fmt.Sprintf(`pipeline "cloud" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  dead_letter   = sink.dead
  source "kafka" "in" {
    brokers = [%q]
    topics  = [%q]
    group   = %q
%s
  }
%s}
`, brokers, topic, group, extra, sinks)
}

// seqProducer writes, for each of parts partitions, records that are JSON
// arrays of per points {"asset":"p<partition>","tag":"s","value":k}, k
// counting from 0 per partition, so record offset r holds k in
// [r*per, (r+1)*per). With ts set, point k also carries "ts": ts + k ms.
type seqProducer struct {
	parts, per, perPart int
	ts                  time.Time
}

// tsOf is the timestamp of point k (with ts set).
func (s seqProducer) tsOf(k int) time.Time { return s.ts.Add(time.Duration(k) * time.Millisecond) }

func (s seqProducer) records(topic string, p, from, to int) []*kgo.Record {
	var recs []*kgo.Record
	for r := from; r < to; r++ {
		var b bytes.Buffer
		b.WriteByte('[')
		for k := r * s.per; k < min((r+1)*s.per, s.perPart); k++ {
			if k > r*s.per {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"asset":"p%d","tag":"s","value":%d`, p, k)
			if !s.ts.IsZero() {
				fmt.Fprintf(&b, `,"ts":%q`, s.tsOf(k).UTC().Format(time.RFC3339Nano))
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: b.Bytes()})
	}
	return recs
}

func (s seqProducer) recordsPerPart() int { return (s.perPart + s.per - 1) / s.per }

// produce writes every record, in rounds spread over d.
func (s seqProducer) produceB(t testing.TB, brokers, topic string) {
	s.produce(t, brokers, topic, 0, nil)
}

func (s seqProducer) produce(t testing.TB, brokers, topic string, d time.Duration, progress func(frac float64)) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	const rounds = 40
	n := s.recordsPerPart()
	for i := range rounds {
		from, to := n*i/rounds, n*(i+1)/rounds
		var recs []*kgo.Record
		for p := range s.parts {
			recs = append(recs, s.records(topic, p, from, to)...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		if err != nil {
			t.Errorf("produce: %v", err)
			return
		}
		if progress != nil {
			progress(float64(i+1) / rounds)
		}
		time.Sleep(d / rounds)
	}
}

// seqOut is what file sinks hold: per file, per asset, the values in order.
type seqOut map[string]map[string][]int

// readSeqFiles reads the complete lines of the files (a line being written
// is left for the next read).
func readSeqFiles(t *testing.T, files []string) seqOut {
	out := seqOut{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			data = data[:i+1]
		} else {
			data = nil
		}
		m := map[string][]int{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var p struct {
				Asset string  `json:"asset"`
				Value float64 `json:"value"`
			}
			if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
				t.Fatalf("%s: %v: %s", f, err, sc.Bytes())
			}
			m[p.Asset] = append(m[p.Asset], int(p.Value))
		}
		out[f] = m
	}
	return out
}

// union counts every value of every asset over all files.
func (o seqOut) union() map[string]map[int]int {
	u := map[string]map[int]int{}
	for _, m := range o {
		for a, vs := range m {
			if u[a] == nil {
				u[a] = map[int]int{}
			}
			for _, v := range vs {
				u[a][v]++
			}
		}
	}
	return u
}

// groupOffsets reads a group's committed offsets for topic.
func groupOffsets(t *testing.T, brokers, group, topic string) map[int32]int64 {
	return groupOffsetsB(t, brokers, group, topic)
}

func groupOffsetsB(t testing.TB, brokers, group, topic string) map[int32]int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Logf("fetch offsets: %v", err)
		return nil
	}
	out := map[int32]int64{}
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// checkCommitted fails when a committed offset is past a point no file
// holds: committed offsets are read first, the files after (they only grow).
func checkCommitted(t *testing.T, brokers, group, topic string, sp seqProducer, files []string) (checked int) {
	offs := groupOffsets(t, brokers, group, topic)
	u := readSeqFiles(t, files).union()
	for p, off := range offs {
		asset := fmt.Sprintf("p%d", p)
		upto := min(int(off)*sp.per, sp.perPart)
		for k := range upto {
			if u[asset][k] == 0 {
				t.Errorf("partition %d committed at offset %d, but value %d (record %d) is in no sink", p, off, k, k/sp.per)
				return checked
			}
		}
		checked += upto
	}
	return checked
}

// checkOrder: in each file each partition's values rise by one, restart
// lower (read again from a committed offset after a rebalance), or jump
// ahead only over values another file holds (the partition was elsewhere).
func checkOrder(t *testing.T, o seqOut) {
	for f, m := range o {
		for a, vs := range m {
			for i := 1; i < len(vs); i++ {
				prev, cur := vs[i-1], vs[i]
				if cur > prev+1 {
					for k := prev + 1; k < cur; k++ {
						elsewhere := false
						for g, m2 := range o {
							if g == f {
								continue
							}
							for _, v := range m2[a] {
								if v == k {
									elsewhere = true
									break
								}
							}
							if elsewhere {
								break
							}
						}
						if !elsewhere {
							t.Errorf("%s: %s jumps from %d to %d, and %d is in no other file: out of order", filepath.Base(f), a, prev, cur, k)
							return
						}
					}
				}
			}
		}
	}
}

// TestKafkaSourceGroupKillAndRebalance: 200,000 points (1,000,000 under
// FLOWD_SOAK) in records of 100 on 6 partitions, produced over ~15 s while
// 3 replicas consume in one group; one replica is SIGKILLed and another
// started, one leaves gracefully (SIGTERM) and another joins, one more
// joins. Throughout, no committed offset is past a point that no sink holds;
// at the end every point is present (duplicates counted), offsets are
// committed to the end, and each partition's order holds in every file.
func TestKafkaSourceGroupKillAndRebalance(t *testing.T) {
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	total := 200_000
	if os.Getenv("FLOWD_SOAK") != "" {
		total = 1_000_000
	}
	sp := seqProducer{parts: 6, per: 100, perPart: total / 6}
	topic := kafkaTopic(t, brokers, int32(sp.parts))
	group := topic + "-group"
	dir := t.TempDir()
	var files []string
	var mu sync.Mutex
	start := func(i int) *harness.Proc {
		out := filepath.Join(dir, fmt.Sprintf("out-%d.jsonl", i))
		mu.Lock()
		files = append(files, out)
		mu.Unlock()
		cfg := harness.WriteFile(t, dir, fmt.Sprintf("r%d.hcl", i),
			kafkaSourcePipeline(brokers, topic, group, out, out+".dead", `    batch_size = 1000
    max_poll_records = 200
    commit_interval = "1s"`))
		return harness.Start(t, cfg)
	}
	allFiles := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), files...)
	}
	replicas := []*harness.Proc{start(1), start(2), start(3)}

	stopCheck := make(chan struct{})
	checkDone := make(chan int)
	go func() {
		checks, points := 0, 0
		for {
			select {
			case <-stopCheck:
				t.Logf("commit checks during the run: %d, covering %d points", checks, points)
				checkDone <- checks
				return
			case <-time.After(700 * time.Millisecond):
			}
			points += checkCommitted(t, brokers, group, topic, sp, allFiles())
			checks++
		}
	}()

	steps := make(chan float64, 64)
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		sp.produce(t, brokers, topic, 15*time.Second, func(f float64) { steps <- f })
		close(steps)
	}()
	killed, left, joined := false, false, false
	for f := range steps {
		switch {
		case f >= 0.25 && !killed:
			killed = true
			replicas[1].Kill()
			t.Logf("SIGKILL replica 2 at %.0f%% produced", f*100)
			replicas = append(replicas, start(4))
		case f >= 0.5 && !left:
			left = true
			if code := replicas[2].Stop(30 * time.Second); code != 0 {
				t.Errorf("replica 3 exit code %d", code)
			}
			t.Logf("replica 3 left at %.0f%% produced", f*100)
			replicas = append(replicas, start(5))
		case f >= 0.75 && !joined:
			joined = true
			replicas = append(replicas, start(6))
			t.Logf("replica 6 joined at %.0f%% produced", f*100)
		}
	}
	<-prodDone
	// Every point present and every partition committed to its end.
	end := int64(sp.recordsPerPart())
	harness.Eventually(t, 3*time.Minute, func() bool {
		offs := groupOffsets(t, brokers, group, topic)
		for p := range sp.parts {
			if offs[int32(p)] != end {
				return false
			}
		}
		return true
	}, "offsets committed to the end (%d records per partition)", end)
	close(stopCheck)
	if <-checkDone == 0 {
		t.Error("no commit check ran during the run")
	}
	checkCommitted(t, brokers, group, topic, sp, allFiles())

	// Lag per partition in /metrics of a live replica.
	m, err := replicas[len(replicas)-1].Metrics()
	if err != nil {
		t.Fatal(err)
	}
	if fam := m["flowd_kafka_consumer_lag"]; fam == nil || len(fam.Metric) == 0 {
		t.Error("no flowd_kafka_consumer_lag series in /metrics")
	}
	st, err := replicas[len(replicas)-1].Status()
	if err != nil {
		t.Fatal(err)
	}
	lagShown := false
	for _, pl := range st.Pipelines {
		for _, c := range pl.Components {
			if c.ID == "source.in" && len(c.Lag) > 0 {
				lagShown = true
				t.Logf("status lag of the last replica: %v", c.Lag)
			}
		}
	}
	if !lagShown {
		t.Error("no per-partition lag for source.in in /api/status")
	}
	for _, r := range replicas {
		if !r.Exited() {
			if code := r.Stop(30 * time.Second); code != 0 {
				t.Errorf("exit code %d", code)
			}
		}
	}
	out := readSeqFiles(t, allFiles())
	u := out.union()
	missing, dups, distinct := 0, 0, 0
	for p := range sp.parts {
		a := fmt.Sprintf("p%d", p)
		for k := range sp.perPart {
			switch c := u[a][k]; {
			case c == 0:
				missing++
			default:
				distinct++
				dups += c - 1
			}
		}
	}
	t.Logf("%d points produced: %d distinct delivered, %d duplicates (redelivered after the kill and rebalances), %d missing",
		sp.parts*sp.perPart, distinct, dups, missing)
	if missing > 0 {
		t.Errorf("%d points lost", missing)
	}
	checkOrder(t, out)
}

// laterTopic names a topic to be created with createTopic while the test
// runs (a Kafka sink to it fails to connect until then: a blocked sink), and
// deletes it when the test ends.
func laterTopic(t *testing.T, brokers, suffix string) string {
	name := fmt.Sprintf("e2e-later-%s-%d", suffix, time.Now().UnixNano())
	deleteTopicAtEnd(t, brokers, name)
	return name
}

// kafkaSinkHCL is a kafka sink block writing json_batch records to topic.
func kafkaSinkHCL(name, inputs, brokers, topic string) string {
	return fmt.Sprintf(`  sink "kafka" %q {
    %s
    brokers = [%q]
    topic   = %q
    format  = "json_batch"
  }
`, name, inputs, brokers, topic)
}

// TestKafkaSourceDeadLetterBeforeCommit: an undecodable record goes to the
// dead-letter sink with topic/partition/offset in its error, and the offset
// is not committed past it while the dead-letter sink is blocked (a Kafka
// sink whose topic does not exist yet), even though the good records after
// it are delivered; once the dead letter is in Kafka the offset moves on.
func TestKafkaSourceDeadLetterBeforeCommit(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	topic := kafkaTopic(t, brokers, 1)
	group := topic + "-group"
	deadTopic := laterTopic(t, brokers, "dead")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	vals := []string{`{"tag":"t","value":0}`, `{"tag":"t","value":1}`, `not json`, `{"tag":"t","value":3}`, `{"tag":"t","value":4}`}
	for _, v := range vals {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "cloud" {
  dead_letter = sink.dead
  source "kafka" "in" {
    brokers         = [%q]
    topics          = [%q]
    group           = %q
    commit_interval = "200ms"
  }
  sink "file" "out" {
    inputs = [source.in]
    path   = %q
  }
%s}
`, brokers, topic, group, out, kafkaSinkHCL("dead", "", brokers, deadTopic)))
	p := harness.Start(t, cfg)
	harness.Eventually(t, 30*time.Second, func() bool {
		m := readSeqFiles(t, []string{out})[out]
		return len(m[""]) == 4
	}, "the four good points delivered")
	time.Sleep(3 * time.Second) // many commit intervals
	if offs := groupOffsets(t, brokers, group, topic); offs[0] > 2 {
		t.Fatalf("committed offset %d, past the bad record at 2 whose dead letter is not taken", offs[0])
	}
	createTopic(t, brokers, deadTopic, 1)
	harness.Eventually(t, 90*time.Second, func() bool { return groupOffsets(t, brokers, group, topic)[0] == 5 },
		"the offset committed to the end once the dead letter is in Kafka")
	recs := consumeAll(t, brokers, deadTopic, 1, 20*time.Second, func(c *consumed) int { return len(c.decode(t)) })
	if len(recs) != 1 {
		t.Fatalf("%d dead-letter records, want 1", len(recs))
	}
	dead := recs[0].decode(t)[0]
	wantErr := fmt.Sprintf("record %s/0@2:", topic)
	if dead.Attrs["dead_letter_reason"] != "decode" || !strings.Contains(dead.Attrs["dead_letter_error"], wantErr) ||
		dead.Value.String() != "not json" || dead.Attrs["kafka_offset"] != "2" {
		t.Fatalf("dead letter %+v, want reason decode and error containing %q", dead, wantErr)
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestKafkaSourceBlockedSinkBounded: the sink (Kafka, to a topic that does
// not exist yet) is blocked for 13 s while 100,000 points wait in the
// topic: the source stops at max_in_flight, RSS stays flat, nothing is
// committed; once the topic exists every point arrives and the offsets
// reach the end.
func TestKafkaSourceBlockedSinkBounded(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	sp := seqProducer{parts: 2, per: 100, perPart: 50_000}
	topic := kafkaTopic(t, brokers, int32(sp.parts))
	group := topic + "-group"
	outTopic := laterTopic(t, brokers, "out")
	dir := t.TempDir()
	sp.produce(t, brokers, topic, 0, nil)
	const window = 5000
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "cloud" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  source "kafka" "in" {
    brokers          = [%q]
    topics           = [%q]
    group            = %q
    commit_interval  = "200ms"
    max_in_flight    = %d
    batch_size       = 500
    max_poll_records = 20
  }
%s}
`, brokers, topic, group, window, kafkaSinkHCL("out", "inputs = [source.in]", brokers, outTopic)))
	p := harness.Start(t, cfg)
	pid := p.Cmd.Process.Pid
	time.Sleep(2 * time.Second)
	base := rssKB(pid)
	var peak, received int64
	for range 26 {
		time.Sleep(500 * time.Millisecond)
		peak = max(peak, rssKB(pid))
		_, received, _ = componentStatus(t, p, "source.in")
	}
	m, err := p.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	lag := harness.Sum(m, "flowd_kafka_consumer_lag")
	t.Logf("blocked 13 s: source took %d of %d points (window %d), RSS %d KiB after start, peak %d KiB, lag %.0f records",
		received, sp.parts*sp.perPart, window, base, peak, lag)
	// 1,000 records; at most the window and one poll fetched.
	if want := float64(sp.parts*sp.recordsPerPart()) - float64(window+2000)/float64(sp.per); lag < want {
		t.Errorf("lag %.0f records while blocked, want at least %.0f: it does not show the backlog", lag, want)
	}
	// The window plus one poll (20 records of 100 points).
	if received > window+2000 {
		t.Errorf("source took %d points while blocked: fetching did not pause", received)
	}
	if peak-base > 50*1024 {
		t.Errorf("RSS grew by %d KiB while blocked", peak-base)
	}
	for part, o := range groupOffsets(t, brokers, group, topic) {
		if o > 0 {
			t.Errorf("partition %d committed at %d with nothing delivered", part, o)
		}
	}
	createTopic(t, brokers, outTopic, 1)
	end := int64(sp.recordsPerPart())
	harness.Eventually(t, 3*time.Minute, func() bool {
		offs := groupOffsets(t, brokers, group, topic)
		return offs[0] == end && offs[1] == end
	}, "offsets committed to the end after the sink unblocked")
	harness.Eventually(t, 20*time.Second, func() bool {
		m, err := p.Metrics()
		return err == nil && m["flowd_kafka_consumer_lag"] != nil && harness.Sum(m, "flowd_kafka_consumer_lag") == 0
	}, "the lag drained to 0")
	got := map[string]map[int]int{}
	consumeAll(t, brokers, outTopic, sp.parts*sp.perPart, 2*time.Minute, func(c *consumed) int {
		pts := c.decode(t)
		for _, pt := range pts {
			if got[pt.Asset] == nil {
				got[pt.Asset] = map[int]int{}
			}
			v, _ := pt.Value.Float64()
			got[pt.Asset][int(v)]++
		}
		return len(pts)
	})
	var missing []string
	dups := 0
	for p := range sp.parts {
		a := fmt.Sprintf("p%d", p)
		for k := range sp.perPart {
			switch c := got[a][k]; {
			case c == 0:
				missing = append(missing, fmt.Sprintf("%s/%d", a, k))
			case c > 1:
				dups += c - 1
			}
		}
	}
	t.Logf("after the block: %d points missing, %d duplicates", len(missing), dups)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d points lost, first %v", len(missing), missing[:min(5, len(missing))])
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// bigValues writes n records {"asset":"big","tag":"s<i>","value":"vvv…"}
// with a string value of size bytes to one partition.
func bigValues(t *testing.T, brokers, topic string, n, size int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := strings.Repeat("v", size)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"asset":"big","tag":"s%d","value":%q}`, i, v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaSourceBlockedSinkBytesBounded: 400 records of one 64 KiB string
// value each (25 MiB) wait in the topic, the sink is blocked as in
// TestKafkaSourceBlockedSinkBounded and max_in_flight (points) is far away:
// the source stops at max_in_flight_bytes (2 MiB: the
// flowd_kafka_in_flight_bytes gauge and the points taken), RSS grows by a
// few MiB, not by the topic; once the sink unblocks every value arrives
// whole and the offset reaches the end.
func TestKafkaSourceBlockedSinkBytesBounded(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	topic := kafkaTopic(t, brokers, 1)
	group := topic + "-group"
	outTopic := laterTopic(t, brokers, "out")
	const n, size, bound, poll = 400, 64 << 10, 2 << 20, 4
	dir := t.TempDir()
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "cloud" {
  latency_slo   = "48h"
  stall_timeout = "1h"
  source "kafka" "in" {
    brokers                   = [%q]
    topics                    = [%q]
    group                     = %q
    commit_interval           = "200ms"
    max_in_flight_bytes       = "2MiB"
    max_poll_records          = %d
    fetch_max_bytes           = "1MiB"
    fetch_max_partition_bytes = "1MiB"
  }
%s}
`, brokers, topic, group, poll, kafkaSinkHCL("out", "inputs = [source.in]", brokers, outTopic)))
	p := harness.Start(t, cfg)
	harness.Eventually(t, 30*time.Second, func() bool { st, _, _ := componentStatus(t, p, "source.in"); return st == "connected" }, "the source connected")
	base := rssKB(p.Cmd.Process.Pid)
	bigValues(t, brokers, topic, n, size)
	per := engine.EstimateBytes([]engine.Point{{Asset: "big", Tag: "s100", Value: engine.String(strings.Repeat("v", size))}})
	atBound := int64((bound + per - 1) / per)
	harness.Eventually(t, 30*time.Second, func() bool { _, r, _ := componentStatus(t, p, "source.in"); return r >= atBound }, "the byte bound reached")
	var peak, received int64
	var inflight float64
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		peak = max(peak, rssKB(p.Cmd.Process.Pid))
		_, received, _ = componentStatus(t, p, "source.in")
		m, err := p.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		inflight = max(inflight, harness.Sum(m, "flowd_kafka_in_flight_bytes"))
	}
	t.Logf("blocked 3 s: source took %d of %d points of %d bytes (bound %d), in flight %.0f bytes; RSS %d KiB idle, peak %d KiB",
		received, n, per, bound, inflight, base, peak)
	// The last poll started below the bound and took at most poll records.
	if received > atBound-1+poll || inflight > float64(bound+poll*per) || inflight < bound {
		t.Errorf("%d points, %.0f bytes in flight while blocked: want the bound %d reached and at most one poll of %d more", received, inflight, bound, poll)
	}
	if peak-base > 24<<10 {
		t.Errorf("RSS grew by %d KiB while blocked (%d KiB in the topic)", peak-base, n*size>>10)
	}
	createTopic(t, brokers, outTopic, 1)
	harness.Eventually(t, 2*time.Minute, func() bool { return groupOffsets(t, brokers, group, topic)[0] == n },
		"offsets committed to the end after the sink unblocked")
	got := map[string]int{}
	consumeAll(t, brokers, outTopic, n, time.Minute, func(c *consumed) int {
		pts := c.decode(t)
		for _, pt := range pts {
			if v := pt.Value.String(); len(v) != size {
				t.Fatalf("%s: value of %d bytes, want %d", pt.Tag, len(v), size)
			}
			got[pt.Tag]++
		}
		return len(pts)
	})
	for i := range n {
		if got[fmt.Sprintf("s%d", i)] == 0 {
			t.Fatalf("point s%d lost (%d of %d distinct points arrived)", i, len(got), n)
		}
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestKafkaSourceEventHubs reads through the broker's Event Hubs-style
// listener (SASL_SSL, PLAIN with $ConnectionString) using only the
// connection string and the test CA.
func TestKafkaSourceEventHubs(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	connStr := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CONNSTR")
	ca := harness.Require(t, "FLOWD_TEST_KAFKA_EH_CA")
	sp := seqProducer{parts: 2, per: 50, perPart: 1000}
	topic := kafkaTopic(t, brokers, int32(sp.parts))
	sp.produce(t, brokers, topic, 0, nil)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := harness.WriteFile(t, dir, "p.hcl", fmt.Sprintf(`pipeline "eh" {
  source "kafka" "hub" {
    connection_string = env("E2E_EH_CONNSTR")
    topics            = [%q]
    group             = %q
    tls {
      ca_file = %q
    }
  }
  sink "file" "out" {
    inputs = [source.hub]
    path   = %q
  }
}
`, topic, topic+"-group", ca, out))
	p := harness.StartEnv(t, []string{"E2E_EH_CONNSTR=" + connStr}, cfg)
	harness.Eventually(t, 60*time.Second, func() bool {
		u := readSeqFiles(t, []string{out}).union()
		return len(u["p0"]) == sp.perPart && len(u["p1"]) == sp.perPart
	}, "every point read over the Event Hubs listener")
	if strings.Contains(p.Stderr.String(), "Zmxvd2QtZTJlLWthZmthLWtleQ") {
		t.Error("the connection string's key is in the log")
	}
	harness.Eventually(t, 15*time.Second, func() bool {
		offs := groupOffsets(t, brokers, topic+"-group", topic)
		return offs[0] == 20 && offs[1] == 20
	}, "offsets committed for the group")
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestKafkaSourceReadsSinkFormats: an edge flowd writes the same simulated
// points with the kafka sink in each of its formats (json, json_batch,
// asset_json); a cloud flowd reads the three topics with one kafka source
// (topic_regex) and gets every point of each back, value and ts intact.
func TestKafkaSourceReadsSinkFormats(t *testing.T) {
	concurrent(t)
	brokers := harness.Require(t, "FLOWD_TEST_KAFKA")
	dir := t.TempDir()
	prefix := fmt.Sprintf("e2e-formats-%d", time.Now().UnixNano())
	formats := []string{"json", "json_batch", "asset_json"}
	const assets, tags, steps = 5, 4, 10
	var sinks strings.Builder
	for _, f := range formats {
		topic := prefix + "." + f
		deleteTopicAtEnd(t, brokers, topic)
		fmt.Fprintf(&sinks, `  sink "kafka" %q {
    inputs       = [source.plant]
    brokers      = [%q]
    topic        = %q
    format       = %q
    create_topic = true
    partitions   = 2
  }
`, f, brokers, topic, f)
	}
	edge := harness.WriteFile(t, dir, "edge.hcl", fmt.Sprintf(`pipeline "edge" {
  source "sim" "plant" {
    assets   = %d
    tags     = %d
    count    = %d
    fast     = true
  }
%s}
`, assets, tags, assets*tags*steps, sinks.String()))
	runToEnd(t, edge, 2*time.Minute)
	out := filepath.Join(dir, "cloud.jsonl")
	cloud := harness.WriteFile(t, dir, "cloud.hcl", fmt.Sprintf(`pipeline "cloud" {
  source "kafka" "edge" {
    brokers      = [%q]
    topics       = [%q]
    topic_regex  = true
    group        = %q
    record_attrs = true
  }
  sink "file" "out" {
    inputs = [source.edge]
    path   = %q
  }
}
`, brokers, "^"+regexp.QuoteMeta(prefix+"."), prefix+"-group", out))
	p := harness.Start(t, cloud)
	type line struct {
		Asset string            `json:"asset"`
		Tag   string            `json:"tag"`
		Value any               `json:"value"`
		TS    string            `json:"ts"`
		Attrs map[string]string `json:"attrs"`
	}
	want := assets * tags * steps
	count := func() map[string]map[string]bool {
		got := map[string]map[string]bool{}
		for _, l := range harness.ReadJSONL[line](t, out) {
			f := strings.TrimPrefix(l.Attrs["kafka_topic"], prefix+".")
			if got[f] == nil {
				got[f] = map[string]bool{}
			}
			got[f][fmt.Sprintf("%s/%s/%s/%v", l.Asset, l.Tag, l.TS, l.Value)] = true
		}
		return got
	}
	harness.Eventually(t, 60*time.Second, func() bool {
		got := count()
		for _, f := range formats {
			if len(got[f]) != want {
				t.Logf("%s: %d of %d", f, len(got[f]), want)
				return false
			}
		}
		return true
	}, "%d distinct points from each of %v", want, formats)
	got := count()
	for k := range got["json"] {
		if !got["json_batch"][k] || !got["asset_json"][k] {
			t.Fatalf("point %s read from json is not the same from json_batch (%v) or asset_json (%v)", k, got["json_batch"][k], got["asset_json"][k])
		}
	}
	if code := p.Stop(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
