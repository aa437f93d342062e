# bench scenario "peer-mqtt": flowd's half of the side-by-side with Telegraf.
# 2 MQTT clients × 5,000 JSON values/s (~180 B) → Kafka, one record per point
# (Telegraf's inputs.mqtt_consumer with json_v2 → outputs.kafka does the same
# work in the same invocation).

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "mqtt_topics" {
  default = "bench/peer-mqtt"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-peer-mqtt"
}

pipeline "peer-mqtt" {
  latency_slo = "10s"

  source "mqtt" "devices" {
    broker      = var.mqtt
    topics      = ["${var.mqtt_topics}/#"]
    qos         = 1
    clean_start = true
    format      = "json"
  }

  sink "kafka" "cloud" {
    inputs       = [source.devices]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "json"
    create_topic = true
    partitions   = 3
    # Telegraf's kafka output compresses nothing by default: the same
    # bytes to the broker on both sides.
    compression = "none"
  }
}
