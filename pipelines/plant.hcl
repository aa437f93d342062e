# The production shape: PLCs over OPC UA and devices over MQTT, cleaned up by
# expressions, thinned by change-of-value, delivered to the cloud (Event Hubs
# and Kafka) and to a tag-history store (Cassandra), with disk buffers so an
# outage of the uplink loses nothing. Endpoints and secrets come from
# variables (--var name=value or FLOWD_VAR_name) and the environment; a
# secret without a default (env("NAME")) must be set, or validate and run
# stop naming it. make test validates with the placeholders in
# pipelines/validate.env.
#
#   EVENTHUBS_CONNECTION_STRING=… flowd validate pipelines/plant.hcl
#   EVENTHUBS_CONNECTION_STRING=… flowd run --var plc_endpoint=opc.tcp://10.1.2.3:4840 pipelines/plant.hcl

service {
  http_addr = "127.0.0.1:9180"
  data_dir  = "./data"
}

variable "plc_endpoint" { default = "opc.tcp://127.0.0.1:4840" }
variable "mqtt_broker" { default = "mqtt://127.0.0.1:1883" }
variable "kafka_brokers" { default = "127.0.0.1:9092" }
variable "cassandra_hosts" { default = "127.0.0.1" }

pipeline "plant" {
  latency_slo   = "10s"
  stall_timeout = "5m"
  dead_letter   = sink.rejects

  # Line 1: every variable below the Line1 folder, pushed by the PLC.
  source "opcua" "line1" {
    endpoint          = var.plc_endpoint
    mode              = "subscribe"
    interval          = "500ms"
    sampling_interval = "250ms"
    security_policy   = "Basic256Sha256"
    security_mode     = "SignAndEncrypt"
    username          = env("PLC_USER", "flowd")
    password          = env("PLC_PASSWORD", "")
    browse {
      root      = "/2:Line1"
      max_depth = 3
      exclude   = ["*Diagnostics*"]
    }
  }

  # Sensors publishing JSON over MQTT v5; several gateways share the load.
  source "mqtt" "sensors" {
    broker      = var.mqtt_broker
    topics      = ["plant/+/telemetry"]
    qos         = 1
    group       = "edge"
    connections = 2
    format      = "json"
    asset_expr  = "topic[1]"
  }

  # Keep good values, in SI units.
  transform "expr" "clean" {
    inputs = [source.line1, source.sensors]
    where  = "quality != 'bad'"
    set = {
      value = "tag endsWith '_degF' ? f_to_c(value) : value"
      tag   = "tag endsWith '_degF' ? replace(tag, '_degF', '_degC') : tag"
    }
  }

  # Only what changed: 0.5 units by default, finer for valves, and every tag
  # at least once a minute.
  transform "cov" "changes" {
    inputs    = [transform.clean]
    deadband  = 0.5
    heartbeat = "60s"
    override {
      match    = "*/valve_*"
      deadband = 0
    }
  }

  sink "eventhubs" "cloud" {
    inputs            = [transform.changes]
    connection_string = env("EVENTHUBS_CONNECTION_STRING") # required: validate fails while it is unset
    format            = "asset_json"
    partition_key_by  = "asset"
    buffer {
      type     = "disk"
      max_size = "2GiB"
    }
  }

  sink "kafka" "backbone" {
    inputs  = [transform.changes]
    brokers = split(",", var.kafka_brokers)
    topic   = "plant.telemetry"
    format  = "asset_json"
    key_by  = "asset"
    buffer {
      type     = "disk"
      max_size = "1GiB"
    }
  }

  # Full-resolution history, before change-of-value.
  sink "cassandra" "history" {
    inputs   = [transform.clean]
    hosts    = split(",", var.cassandra_hosts)
    keyspace = "plant"
    table    = "tag_history"
    bucket   = "24h"
    ttl      = "2160h"
  }

  sink "file" "rejects" {
    path = "data/rejects.jsonl"
  }
}
