# The cloud tier: one of N replicas in a Kafka consumer group, reading what
# edge gateways write (pipelines/kafka.hcl: json records; json_batch and
# asset_json records decode the same way) and storing it. Run as many
# replicas as the topic has partitions; each gets a share, and a replica
# that dies hands its partitions to the others (cooperative-sticky).
# Offsets are committed only past points every sink took: at least once.
#
# Local broker:  eval "$(e2e/services.sh up kafka)"
# then:          flowd run pipelines/kafka-cloud.hcl   (once per replica, each
#                with its own --http port)
# Event Hubs:    replace brokers with
#                  connection_string = env("EVENTHUBS_CONNECTION_STRING")
#                and group with an existing consumer group ("$Default").

variable "kafka_brokers" { default = "127.0.0.1:19092" }

pipeline "from_kafka" {
  dead_letter = sink.rejected

  source "kafka" "edge" {
    brokers      = [var.kafka_brokers]
    topics       = ["plant.telemetry"]
    group        = "flowd-cloud"
    start_offset = "earliest"
    format       = "json"
    record_attrs = true # kafka_key, kafka_timestamp, kafka_header_* for expressions
  }

  # The edge's record key (asset/tag) is kept as an attribute.
  transform "expr" "tag_source" {
    inputs = [source.edge]
    set = {
      "attrs.edge_key" = "attrs.kafka_key ?? ''"
    }
  }

  sink "file" "store" {
    inputs = [transform.tag_source]
    path   = "./data/cloud/points.jsonl"
  }

  sink "file" "rejected" {
    path = "./data/cloud/rejected.jsonl"
  }
}
