package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// countCanonical counts the points of a record in any of flowd's formats
// (json, json_batch, asset_json): every point carries exactly one quality.
func countCanonical(v []byte) int64 { return int64(bytes.Count(v, []byte(`"quality":`))) }

// countRecords counts one point per record (Telegraf's json serializer
// writes one metric, here one field, per record).
func countRecords([]byte) int64 { return 1 }

// endOffsets sums the end offsets of every partition of topic.
func endOffsets(ctx context.Context, brokers, topic string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := ends.Error(); err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// countTopic reads topic from the start to its current end and returns the
// records and the points they hold (by count).
func countTopic(ctx context.Context, brokers, topic string, count func([]byte) int64) (records, points int64, err error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return 0, 0, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return 0, 0, err
	}
	if err := ends.Error(); err != nil {
		return 0, 0, err
	}
	want := map[int32]int64{}
	partitions := map[string]map[int32]kgo.Offset{topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			partitions[topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return 0, 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumePartitions(partitions),
		kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return records, points, fmt.Errorf("%d partitions not read to the end: %w", len(want), ctx.Err())
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, e error) { ferr = errors.Join(ferr, e) })
		if ferr != nil {
			return records, points, ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			records++
			points += count(r.Value)
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return records, points, nil
}

// deleteTopic removes a run's topic so benchmarks do not fill the broker.
func deleteTopic(brokers, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return
	}
	defer cl.Close()
	kadm.NewClient(cl).DeleteTopics(ctx, topic)
}
