# bench scenario "trackers", edge tier: ThingsBoard's smart-tracker example
# as the seed deploys it. 1,000,000 devices each send one MQTT message a
# minute carrying its 5 points (16,667 messages/s × 5 ≈ 83,000 points/s); the
# edge gateway forwards them to Kafka as json_batch records. The cloud tier
# (trackers-cloud.hcl, N replicas in one consumer group) writes them to
# Cassandra.

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "mqtt_topics" {
  default = "bench/trackers"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-trackers"
}

pipeline "trackers-edge" {
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

  sink "kafka" "cloud" {
    inputs       = [source.trackers]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "json_batch"
    create_topic = true
    partitions   = 6
    linger       = "5ms"
  }
}
