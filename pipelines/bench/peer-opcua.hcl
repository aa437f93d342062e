# bench scenario "peer-opcua": flowd's half of the side-by-side with Telegraf.
# 1,000 nodes of a simulated PLC polled every 200 ms (5,000 points/s) → Kafka,
# one record per point (Telegraf's inputs.opcua → outputs.kafka does the same
# work in the same invocation).

variable "plc_endpoint" {
  default = "opc.tcp://127.0.0.1:4840"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-peer-opcua"
}

pipeline "peer-opcua" {
  latency_slo = "10s"

  source "opcua" "plc" {
    endpoint = var.plc_endpoint
    mode     = "poll"
    interval = "200ms"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  sink "kafka" "cloud" {
    inputs       = [source.plc]
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
