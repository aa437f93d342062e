# Simulated plant signals into Kafka, one record per point keyed by asset/tag.
# Start a local broker first:  eval "$(e2e/services.sh up kafka)"
# then:                        flowd run pipelines/kafka.hcl

variable "kafka_brokers" { default = "127.0.0.1:19092" }

pipeline "to_kafka" {
  source "sim" "plant" {
    assets   = 5
    tags     = 7
    interval = "1s"
  }

  sink "kafka" "cloud" {
    inputs       = [source.plant]
    brokers      = [var.kafka_brokers]
    topic        = "plant.telemetry"
    create_topic = true
    format       = "json"
    key_by       = "asset_tag"
  }
}
