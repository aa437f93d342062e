# Reads a simulated PLC over OPC UA. Start one first:
#   flowd sim plc --listen opc.tcp://127.0.0.1:4840 --assets 3 --tags 10 --interval 500ms
#   flowd run pipelines/opcua.hcl

variable "plc_endpoint" {
  default = "opc.tcp://127.0.0.1:4840"
}

pipeline "opcua" {
  latency_slo = "10s"

  # Subscribes to every variable below Objects/Asset1 … AssetN.
  source "opcua" "plc" {
    endpoint = var.plc_endpoint
    mode     = "subscribe"
    interval = "500ms"
    browse {
      root      = "i=85"
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  # Polls two tags every second under names of our own.
  source "opcua" "line1" {
    endpoint = var.plc_endpoint
    mode     = "poll"
    interval = "1s"
    asset    = "line1"
    nodes = {
      temperature = "ns=2;s=Asset1.Tag1"
      speed       = "ns=2;s=Asset1.Tag2"
    }
    node "running" {
      id            = "ns=2;s=Asset1.Tag4"
      deadband_type = "none"
    }
  }

  sink "stdout" "console" {
    inputs = [source.plc, source.line1]
  }
}
