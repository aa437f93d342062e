# MQTT devices → flowd → MQTT (unified namespace) and a local file.
# Start a broker (e2e/services.sh up mosquitto) and devices:
#   flowd sim mqtt --broker mqtt://127.0.0.1:18830 --clients 2 --rate 1000
variable "broker" { default = "mqtt://127.0.0.1:18830" }

pipeline "mqtt" {
  source "mqtt" "devices" {
    broker      = var.broker
    topics      = ["sim/+/+"]
    qos         = 1
    group       = "flowd"
    connections = 2
    asset_expr  = "topic[2]" # an expression over the topic's levels
  }

  sink "mqtt" "uns" {
    inputs     = [source.devices]
    broker     = var.broker
    topic_expr = "'uns/' + asset + '/' + tag" # an expression over the point
    qos        = 1
  }

  sink "file" "local" {
    inputs = [source.devices]
    path   = "out/mqtt.jsonl"
  }
}
