# bench scenario "trackers", cloud tier: one of N replicas in one Kafka
# consumer group, reading what the edge tier (trackers.hcl) produced and
# writing it to Cassandra (tag history table, time-bucketed partitions).
# Offsets are committed only past points Cassandra acknowledged.

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-trackers"
}

variable "group" {
  default = "flowd-bench-trackers"
}

variable "cassandra" {
  default = "127.0.0.1:19042"
}

variable "keyspace" {
  default = "flowd_bench"
}

pipeline "trackers-cloud" {
  latency_slo = "10s"

  source "kafka" "edge" {
    brokers = [var.kafka]
    topics  = [var.topic]
    group   = var.group
  }

  sink "cassandra" "history" {
    inputs        = [source.edge]
    hosts         = [var.cassandra]
    keyspace      = var.keyspace
    table         = "trackers"
    consistency   = "ONE"
    create_schema = true
    ttl           = "1h"
  }
}
