# Smart meters: LoRaWAN uplinks delivered by the network server's HTTP
# integration (ChirpStack v4 "uplink" events; The Things Stack works the same
# with its own field names) → flowd → Cassandra. Each uplink carries one
# meter's decoded reading: energy, voltage and power, three points.
#   eval "$(e2e/services.sh up cassandra)"
#   flowd run pipelines/smart-meters.hcl
#   curl -X POST --data @uplink.json http://127.0.0.1:9280/uplink/chirpstack
# Outside loopback, add auth { bearer_token = env("UPLINK_TOKEN") } and a tls block.
variable "cassandra" { default = "127.0.0.1:19042" }

pipeline "smart-meters" {
  latency_slo = "5s"
  dead_letter = sink.rejected

  source "http" "uplinks" {
    listen      = "127.0.0.1:9280"
    path        = "/uplink"
    format      = "map"
    max_pending = 20000
    map = {
      asset  = "payload.deviceInfo.deviceName"
      values = "payload.object" # {"energy_kwh": …, "voltage": …, "power_w": …}
      ts     = "payload.time"
    }
  }

  transform "expr" "units" {
    inputs = [source.uplinks]
    set = {
      tag   = "tag == 'power_w' ? 'power_kw' : tag"
      value = "tag == 'power_w' ? value / 1000.0 : value"
    }
  }

  sink "cassandra" "history" {
    inputs        = [transform.units]
    hosts         = [var.cassandra]
    keyspace      = "meters"
    create_schema = true
    consistency   = "ONE"
    buffer {
      type     = "disk"
      max_size = "1GiB"
    }
  }

  sink "file" "rejected" {
    path = "out/smart-meters-rejected.jsonl"
  }
}
