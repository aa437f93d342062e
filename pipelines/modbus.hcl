# Polls two simulated Modbus TCP devices (energy meters). Start them first:
#   flowd sim modbus --listen 127.0.0.1:5020 --devices 2 --interval 1s
#   flowd run pipelines/modbus.hcl
# `flowd validate --verbose pipelines/modbus.hcl` prints the block reads.
# The addresses follow the simulator's register map
# (go doc github.com/flowd/flowd/sim/modbus).

variable "meter_host" {
  default = "127.0.0.1"
}

pipeline "modbus" {
  latency_slo = "10s"

  source "modbus" "meters" {
    interval   = "1s"
    timeout    = "2s"
    byte_order = "big"
    word_order = "big"

    device "meter1" {
      endpoint = "${var.meter_host}:5020"
      unit_id  = 1
      asset    = "meter1"

      tag "status_word" {
        address = 0
        type    = "uint16"
      }
      tag "breaker_closed" {
        address = 0
        type    = "bool"
        bit     = 0
      }
      tag "power_kw" {
        address = 2
        type    = "uint32"
        scale   = 0.001
      }
      tag "reactive_kvar" {
        address = 4
        type    = "int32"
        scale   = 0.001
      }
      tag "energy_wh" {
        address = 6
        type    = "uint64"
      }
      tag "voltage" {
        address = 14
        type    = "float32"
      }
      tag "frequency" {
        address = 16
        type    = "float64"
      }
      tag "serial" {
        address = 20
        type    = "string"
        length  = 6
      }
      # a word-swapped float (CDAB), as many meters send them
      tag "current" {
        address    = 114
        type       = "float32"
        word_order = "little"
      }
      # faster group: read every 250 ms
      tag "temperature" {
        table    = "input"
        address  = 1
        type     = "int16"
        scale    = 0.1
        offset   = 100
        interval = "250ms"
      }
      tag "running" {
        table   = "coil"
        address = 0
      }
      tag "door_open" {
        table   = "discrete"
        address = 3
      }
    }

    # Same layout, but the whole device sends little-endian words.
    device "meter2" {
      endpoint   = "${var.meter_host}:5021"
      word_order = "little"

      tag "power_kw" {
        address = 102
        type    = "uint32"
        scale   = 0.001
      }
      tag "energy_wh" {
        address = 106
        type    = "uint64"
      }
    }
  }

  sink "stdout" "console" {
    inputs = [source.meters]
  }
}
