# bench scenario "trackers": ThingsBoard's smart-tracker example. 1,000,000
# devices × 5 points per minute (≈ 83,000 points/s) published over MQTT →
# Cassandra (tag history table, time-bucketed partitions).

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "mqtt_topics" {
  default = "bench/trackers"
}

variable "cassandra" {
  default = "127.0.0.1:19042"
}

pipeline "trackers" {
  latency_slo = "10s"

  source "mqtt" "trackers" {
    broker      = var.mqtt
    topics      = ["${var.mqtt_topics}/#"]
    qos         = 1
    clean_start = true
    group       = "bench"
    connections = 2
    format      = "json"
  }

  sink "cassandra" "history" {
    inputs        = [source.trackers]
    hosts         = [var.cassandra]
    keyspace      = "flowd_bench"
    table         = "trackers"
    consistency   = "ONE"
    create_schema = true
    ttl           = "1h"
  }
}
