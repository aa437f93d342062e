# OPC UA → Sparkplug B gateway, and a Sparkplug host reading it back.
# Start a broker (e2e/services.sh up mosquitto) and a PLC:
#   flowd sim plc --listen opc.tcp://127.0.0.1:4840 --assets 3 --tags 10 --interval 500ms
#   flowd run pipelines/sparkplug.hcl
# Other edge nodes: flowd sim mqtt --broker mqtt://127.0.0.1:18830 --format sparkplug --group plant1
variable "broker" { default = "mqtt://127.0.0.1:18830" }

pipeline "gateway" {
  source "opcua" "plc" {
    endpoint = "opc.tcp://127.0.0.1:4840"
    mode     = "subscribe"
    interval = "500ms"
    browse {
      root      = "i=85"
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  transform "cov" "changes" {
    inputs    = [source.plc]
    deadband  = 0.1
    heartbeat = "60s"
  }

  # flowd as a Sparkplug edge node: each asset is a device, each tag a metric.
  sink "mqtt" "edge" {
    inputs              = [transform.changes]
    broker              = var.broker
    format              = "sparkplug"
    sparkplug_group     = "plant1"
    sparkplug_edge_node = "gateway1"
  }
}

pipeline "host" {
  # flowd as a Sparkplug host: every edge node of the group, decoded to points.
  source "mqtt" "spb" {
    broker     = var.broker
    topics     = ["spBv1.0/plant1/#"]
    format     = "sparkplug"
    asset_expr = "topic[3] + (len(topic) > 4 ? '/' + topic[4] : '')"
  }

  sink "file" "local" {
    inputs = [source.spb]
    path   = "out/sparkplug.jsonl"
  }
}
