# bench scenario "aio-single": Azure IoT Operations' single-node example.
# 125 assets × 50 tags polled at 2 Hz (12,500 points/s) from a simulated PLC
# over OPC UA → change of value → Event Hubs over AMQP (the mock from
# e2e/services.sh). Run it with `flowd bench aio-single`, which starts the PLC
# and sets the variables.

variable "plc_endpoint" {
  default = "opc.tcp://127.0.0.1:4840"
}

variable "eventhubs" {
  default = "Endpoint=sb://localhost:15671/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Zmxvd2QtZTJlLWV2ZW50aHVicy1rZXk=;EntityPath=flowd"
}

# The CA that signs the Event Hubs endpoint's certificate; empty means the
# system roots. `flowd bench` points it at the test mock's CA, which exists
# only once that service has started, so the file must never be the default.
variable "eventhubs_ca" {
  default = ""
}

pipeline "aio-single" {
  latency_slo = "10s"

  source "opcua" "plc" {
    endpoint = var.plc_endpoint
    mode     = "poll"
    interval = "500ms"
    browse {
      max_depth = 2
      include   = ["Asset*/*"]
    }
  }

  transform "cov" "changes" {
    inputs = [source.plc]
  }

  sink "eventhubs" "hub" {
    inputs            = [transform.changes]
    connection_string = var.eventhubs
    format            = "asset_json"
    tls {
      ca_file     = var.eventhubs_ca
      server_name = "localhost"
    }
  }
}
