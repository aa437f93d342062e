# bench scenario "max": MQTT → expr → change of value → Kafka as fast as the
# publishers can go (flowd's backpressure paces them); reports the rate flowd
# sustains and its p99.

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "mqtt_topics" {
  default = "bench/max"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-max"
}

pipeline "max" {
  latency_slo = "1s"

  source "mqtt" "devices" {
    broker      = var.mqtt
    topics      = ["${var.mqtt_topics}/#"]
    qos         = 1
    clean_start = true
    group       = "bench"
    connections = 4
    format      = "json"
  }

  transform "expr" "scale" {
    inputs = [source.devices]
    where  = "quality == 'good'"
    set = {
      value = "round(value * 1.8 + 32, 3)"
    }
  }

  transform "cov" "changes" {
    inputs   = [transform.scale]
    deadband = 0.01
  }

  sink "kafka" "cloud" {
    inputs       = [transform.changes]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "json_batch"
    create_topic = true
    partitions   = 3
    linger       = "5ms"
  }
}
