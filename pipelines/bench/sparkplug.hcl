# bench scenario "sparkplug": Sparkplug B edge nodes (`flowd sim mqtt
# --format sparkplug`) → the mqtt source as a Sparkplug host → discard: the
# cost of decoding births and DDATA by alias. Run it with `flowd bench
# sparkplug`, which starts the edge nodes and sets the variables.

variable "mqtt" {
  default = "mqtt://127.0.0.1:18830"
}

variable "group" {
  default = "bench"
}

pipeline "sparkplug" {
  latency_slo = "10s"

  source "mqtt" "edge" {
    broker      = var.mqtt
    topics      = ["spBv1.0/${var.group}/#"]
    format      = "sparkplug"
    connections = 1
  }

  sink "discard" "null" {
    inputs = [source.edge]
  }
}
