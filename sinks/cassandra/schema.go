package cassandra

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// schema holds the CQL the sink runs, derived once from the config.
type schema struct {
	keyspace string // CREATE KEYSPACE
	table    string // CREATE TABLE
	insert   string // the prepared INSERT
	bucketMS int64  // bucket width in milliseconds
}

func newSchema(c *Config) schema {
	return schema{
		keyspace: KeyspaceCQL(c.Keyspace, c.Replication),
		table:    TableCQL(c.Keyspace, c.Table, c.Bucket),
		insert:   InsertCQL(c.Keyspace, c.Table, c.TTL),
		bucketMS: c.Bucket.Milliseconds(),
	}
}

// KeyspaceCQL is the CREATE KEYSPACE statement create_schema runs.
func KeyspaceCQL(keyspace string, replication map[string]string) string {
	if len(replication) == 0 {
		replication = map[string]string{"class": "SimpleStrategy", "replication_factor": "1"}
	}
	keys := make([]string, 0, len(replication))
	for k := range replication {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		// class first, then the rest by name
		if (keys[i] == "class") != (keys[j] == "class") {
			return keys[i] == "class"
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'%s': '%s'", k, replication[k])
	}
	return fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {%s}", keyspace, b.String())
}

// compactionWindow maps a bucket to TimeWindowCompactionStrategy's unit and size.
func compactionWindow(bucket time.Duration) (string, int64) {
	switch {
	case bucket%(24*time.Hour) == 0:
		return "DAYS", int64(bucket / (24 * time.Hour))
	case bucket%time.Hour == 0:
		return "HOURS", int64(bucket / time.Hour)
	}
	return "MINUTES", int64(bucket / time.Minute)
}

// TableCQL is the CREATE TABLE statement for the tag history: a partition per
// (asset, tag, bucket), newest rows first, one value column per type.
func TableCQL(keyspace, table string, bucket time.Duration) string {
	unit, size := compactionWindow(bucket)
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
    asset         text,
    tag           text,
    bucket        timestamp,
    ts            timestamp,
    value_double  double,
    value_bigint  bigint,
    value_boolean boolean,
    value_text    text,
    quality       text,
    status        bigint,
    attrs         frozen<map<text, text>>,
    PRIMARY KEY ((asset, tag, bucket), ts)
) WITH CLUSTERING ORDER BY (ts DESC)
  AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': '%s', 'compaction_window_size': '%d'}`,
		keyspace, table, unit, size)
}

// InsertCQL is the prepared INSERT of one row.
func InsertCQL(keyspace, table string, ttl time.Duration) string {
	q := fmt.Sprintf("INSERT INTO %s.%s (asset, tag, bucket, ts, value_double, value_bigint, value_boolean, value_text, quality, status, attrs) "+
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", keyspace, table)
	if ttl > 0 {
		q += fmt.Sprintf(" USING TTL %d", int64(ttl/time.Second))
	}
	return q
}

// BucketOf returns the start of the bucket holding ts (Unix milliseconds),
// aligned on the Unix epoch, as Unix milliseconds.
func BucketOf(tsMS, bucketMS int64) int64 {
	b := tsMS - tsMS%bucketMS
	if tsMS < 0 && tsMS%bucketMS != 0 {
		b -= bucketMS
	}
	return b
}
