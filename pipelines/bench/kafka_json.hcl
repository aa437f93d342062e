# bench scenario "kafka_json": simulated signals as fast as the sink takes them
# into the local Kafka broker (e2e/services.sh up kafka), format json.

variable "kafka_brokers" { default = "127.0.0.1:19092" }
# flowd bench gives each run its own topic and deletes it afterwards.
variable "topic" { default = "flowd.bench" }

pipeline "kafka_json" {
  source "sim" "plant" {
    assets     = 50
    tags       = 100
    fast       = true
    batch_size = 5000
  }

  sink "kafka" "broker" {
    inputs       = [source.plant]
    brokers      = [var.kafka_brokers]
    topic        = var.topic
    create_topic = true
    partitions   = 6
    format       = "json"
    key_by       = "asset_tag"
  }
}
