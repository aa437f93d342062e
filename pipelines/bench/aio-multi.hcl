# bench scenario "aio-multi": Azure IoT Operations' five-node example on one
# flowd. 85 assets × 1,000 tags at 1 Hz, half of them changing, across 5
# simulated PLCs, plus 2 MQTT clients × 10,000 JSON values/s
# (~180 B, a third changing) → change of value → Kafka. The PLCs are polled
# every second: with subscriptions of 17,000 items per PLC the OPC UA source
# deadlocks in gopcua v0.8.0 (Client.Subscribe waits on the publish loop,
# which waits for notifications nobody reads until every subscription exists).

variable "plc1" {
  default = "opc.tcp://127.0.0.1:4841"
}

variable "plc2" {
  default = "opc.tcp://127.0.0.1:4842"
}

variable "plc3" {
  default = "opc.tcp://127.0.0.1:4843"
}

variable "plc4" {
  default = "opc.tcp://127.0.0.1:4844"
}

variable "plc5" {
  default = "opc.tcp://127.0.0.1:4845"
}

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "mqtt_topics" {
  default = "bench/aio-multi"
}

variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-aio-multi"
}

pipeline "aio-multi" {
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

  source "opcua" "plc3" {
    endpoint = var.plc3
    mode     = "poll"
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  source "opcua" "plc4" {
    endpoint = var.plc4
    mode     = "poll"
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  source "opcua" "plc5" {
    endpoint = var.plc5
    mode     = "poll"
    interval = "1s"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  source "mqtt" "devices" {
    broker      = var.mqtt
    topics      = ["${var.mqtt_topics}/#"]
    qos         = 1
    clean_start = true
    format      = "json"
  }

  transform "cov" "changes" {
    inputs = [source.plc1, source.plc2, source.plc3, source.plc4, source.plc5, source.devices]
  }

  sink "kafka" "cloud" {
    inputs       = [transform.changes]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "json"
    create_topic = true
    partitions   = 3
  }
}
