package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/flowd/flowd/e2e/harness"
)

// BenchmarkCassandraFlowd runs the real flowd binary: a sim source (fast,
// 100 assets × 50 tags, 1,000,000 points per run) into the Cassandra test node,
// and reports points/s (start to exit, session setup included), flowd's CPU
// (user + system time over wall time, in cores) and its peak RSS. Each case
// is one tuning of the sink.
//
//	eval "$(e2e/services.sh up cassandra)"
//	go test -run '^$' -bench CassandraFlowd -benchtime 1x ./e2e
func BenchmarkCassandraFlowd(b *testing.B) {
	addr := harness.Require(b, "FLOWD_TEST_CASSANDRA")
	r := simRun{assets: 100, tags: 50, steps: 200, interval: 10 * time.Millisecond}
	buffer := "\n    buffer {\n      max_points = 500000\n    }"
	cases := []struct{ name, extra string }{
		{"defaults", ""},
		{"coalesce=0", "    coalesce_points = 0"},
		{"coalesce=10000", "    coalesce_points = 10000"},
		{"buffer=500k", buffer},
		{"in_flight=256", "    max_in_flight = 256"},
		{"buffer=500k,batch_rows=1", "    max_batch_rows = 1" + buffer},
		{"buffer=500k,consistency=ONE", `    consistency = "ONE"` + buffer},
	}
	c := gocql.NewCluster(addr)
	c.Logger = gocql.NewLogger(gocql.LogLevelNone)
	sess, err := c.CreateSession()
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			var wall, cpu time.Duration
			var rss int64
			n := 0
			for i := 0; b.Loop(); i++ {
				ks := fmt.Sprintf("bench_%d_%d", time.Now().Unix(), i)
				cfg := harness.WriteFile(b, b.TempDir(), "cass.hcl", cassandraPipeline(addr, ks, r, bc.extra))
				start := time.Now()
				p := harness.Start(b, cfg)
				if code := p.Wait(10 * time.Minute); code != 0 {
					b.Fatalf("flowd exit %d\n%s", code, p.Stderr.String())
				}
				wall += time.Since(start)
				st := p.Cmd.ProcessState
				cpu += st.UserTime() + st.SystemTime()
				if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
					rss = max(rss, ru.Maxrss)
				}
				n += r.count()
				sess.Query("DROP KEYSPACE IF EXISTS " + ks).Exec()
			}
			b.ReportMetric(float64(n)/wall.Seconds(), "points/s")
			b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu_cores")
			b.ReportMetric(float64(rss)/1024, "rss_peak_MB")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu_us/point")
		})
	}
}
