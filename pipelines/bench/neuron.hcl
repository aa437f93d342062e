# bench scenario "neuron": EMQX Neuron's published OPC UA figure. 100,000
# points/s polled over OPC UA from two simulated PLCs (2 × 50 assets × 1,000
# tags every second) → Kafka, one record per asset per batch as Neuron sends
# one message per tag group.

variable "plc1" {
  default = "opc.tcp://127.0.0.1:4841"
}

variable "plc2" {
  default = "opc.tcp://127.0.0.1:4842"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-neuron"
}

pipeline "neuron" {
  latency_slo = "10s"

  source "opcua" "plc1" {
    endpoint = var.plc1
    mode     = "poll"
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  source "opcua" "plc2" {
    endpoint = var.plc2
    mode     = "poll"
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  sink "kafka" "cloud" {
    inputs       = [source.plc1, source.plc2]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "asset_json"
    create_topic = true
    partitions   = 3
  }
}
