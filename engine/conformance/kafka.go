package conformance

import (
	"context"
	"fmt"

	"github.com/flowd/flowd/engine/codec"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopic reads every record of a one-partition topic up to its end and
// returns the values of the points (canonical JSON, one point per record,
// as Point made them) — what the Kafka-speaking sinks' peers received.
func ReadTopic(ctx context.Context, brokers, topic string) ([]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	end, _ := ends.Lookup(topic, 0)
	var out []int64
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return nil, err
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			pts, err := codec.DecodePoints(nil, r.Value)
			if err != nil || len(pts) != 1 {
				perr = fmt.Errorf("record %d %q: not one point (%v)", r.Offset, r.Value, err)
				return
			}
			v, ok := pts[0].Value.Int64()
			if !ok {
				perr = fmt.Errorf("record %d %q: value is not an integer", r.Offset, r.Value)
				return
			}
			out = append(out, v)
		})
		if perr != nil {
			return nil, perr
		}
	}
	return out, nil
}
