package cassandra

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/engine"
	"github.com/flowd/flowd/engine/conformance"
)

// The cassandra sink passes the sink conformance suite against the shared
// Cassandra, each check in a keyspace of its own read back with CQL. Rows
// are keyed by (asset, tag, bucket, ts), so a point written twice is one row.
func TestConformance(t *testing.T) {
	conformance.RunSink(t, conformance.Sink{
		Spec: Spec,
		Setup: func(t *testing.T, addr string) conformance.SinkSetup {
			server := conformance.Require(t, "FLOWD_TEST_CASSANDRA")
			if addr == "" {
				addr = server
			}
			ks := fmt.Sprintf("conformance_%d_%d", time.Now().UnixNano()%1e9, rand.IntN(1e6))
			c := gocql.NewCluster(server)
			c.Timeout, c.ConnectTimeout = 20*time.Second, 20*time.Second
			sess, err := c.CreateSession()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				sess.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
				sess.Close()
			})
			return conformance.SinkSetup{
				Config: fmt.Sprintf(`hosts = [%q]
keyspace = %q
create_schema = true
consistency = "ONE"
timeout = "3s"
connect_timeout = "3s"
retries = 1`, addr, ks),
				Received: func(ctx context.Context) ([]int64, error) {
					var out []int64
					it := sess.Query("SELECT value_bigint FROM " + ks + ".points").WithContext(ctx).Iter()
					var v int64
					for it.Scan(&v) {
						out = append(out, v)
					}
					if err := it.Close(); err != nil {
						// The keyspace and table exist once the sink connected.
						return nil, err
					}
					return out, nil
				},
				Poison: func(v int64) engine.Point {
					p := conformance.Point(v)
					p.Tag = "" // a partition key cannot be empty
					return p
				},
			}
		},
		Peer: func(t *testing.T) conformance.Peer {
			return conformance.Peer{Upstream: conformance.Require(t, "FLOWD_TEST_CASSANDRA")}
		},
	})
}
