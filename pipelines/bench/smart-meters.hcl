# bench scenario "smart-meters": ThingsBoard's 1 M smart meters example.
# 1,000,000 meters report through a LoRaWAN network server whose HTTP
# integration POSTs 280 uplinks/s, each with three decoded readings (840
# points/s) → unit conversion → Cassandra. `flowd bench smart-meters` starts
# the load generator (flowd sim http) and sets the variables.

variable "listen" {
  default = "127.0.0.1:9280"
}

variable "cassandra" {
  default = "127.0.0.1:19042"
}

pipeline "smart-meters" {
  latency_slo = "5s"

  source "http" "uplinks" {
    listen      = var.listen
    path        = "/uplink"
    format      = "map"
    max_pending = 20000
    map = {
      asset  = "payload.deviceInfo.deviceName"
      values = "payload.object"
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
    keyspace      = "flowd_bench"
    table         = "smart_meters"
    consistency   = "ONE"
    create_schema = true
    ttl           = "1h"
  }
}
