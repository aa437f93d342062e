# bench scenario "modbus": 100 Modbus TCP devices × 100 holding registers,
# each polled once a second (10,000 points/s; modbus-10hz: every 100 ms,
# 100,000 points/s), from `flowd sim modbus
# --devices 100 --registers 100` on consecutive ports from base_port, into
# the discard sink: the cost of polling and decoding, no broker in the way.
# Each device is one read of 100 registers per second.
# Generated: one device block per simulated device.

variable "base_port" {
  default = 5020
}

variable "interval" {
  default = "1s"
}

pipeline "modbus" {
  latency_slo = "10s"

  source "modbus" "devices" {
    interval = var.interval
    timeout  = "2s"

    device "dev000" {
      endpoint = "127.0.0.1:${var.base_port + 0}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev001" {
      endpoint = "127.0.0.1:${var.base_port + 1}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev002" {
      endpoint = "127.0.0.1:${var.base_port + 2}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev003" {
      endpoint = "127.0.0.1:${var.base_port + 3}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev004" {
      endpoint = "127.0.0.1:${var.base_port + 4}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev005" {
      endpoint = "127.0.0.1:${var.base_port + 5}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev006" {
      endpoint = "127.0.0.1:${var.base_port + 6}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev007" {
      endpoint = "127.0.0.1:${var.base_port + 7}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev008" {
      endpoint = "127.0.0.1:${var.base_port + 8}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev009" {
      endpoint = "127.0.0.1:${var.base_port + 9}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev010" {
      endpoint = "127.0.0.1:${var.base_port + 10}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev011" {
      endpoint = "127.0.0.1:${var.base_port + 11}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev012" {
      endpoint = "127.0.0.1:${var.base_port + 12}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev013" {
      endpoint = "127.0.0.1:${var.base_port + 13}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev014" {
      endpoint = "127.0.0.1:${var.base_port + 14}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev015" {
      endpoint = "127.0.0.1:${var.base_port + 15}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev016" {
      endpoint = "127.0.0.1:${var.base_port + 16}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev017" {
      endpoint = "127.0.0.1:${var.base_port + 17}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev018" {
      endpoint = "127.0.0.1:${var.base_port + 18}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev019" {
      endpoint = "127.0.0.1:${var.base_port + 19}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev020" {
      endpoint = "127.0.0.1:${var.base_port + 20}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev021" {
      endpoint = "127.0.0.1:${var.base_port + 21}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev022" {
      endpoint = "127.0.0.1:${var.base_port + 22}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev023" {
      endpoint = "127.0.0.1:${var.base_port + 23}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev024" {
      endpoint = "127.0.0.1:${var.base_port + 24}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev025" {
      endpoint = "127.0.0.1:${var.base_port + 25}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev026" {
      endpoint = "127.0.0.1:${var.base_port + 26}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev027" {
      endpoint = "127.0.0.1:${var.base_port + 27}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev028" {
      endpoint = "127.0.0.1:${var.base_port + 28}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev029" {
      endpoint = "127.0.0.1:${var.base_port + 29}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev030" {
      endpoint = "127.0.0.1:${var.base_port + 30}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev031" {
      endpoint = "127.0.0.1:${var.base_port + 31}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev032" {
      endpoint = "127.0.0.1:${var.base_port + 32}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev033" {
      endpoint = "127.0.0.1:${var.base_port + 33}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev034" {
      endpoint = "127.0.0.1:${var.base_port + 34}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev035" {
      endpoint = "127.0.0.1:${var.base_port + 35}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev036" {
      endpoint = "127.0.0.1:${var.base_port + 36}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev037" {
      endpoint = "127.0.0.1:${var.base_port + 37}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev038" {
      endpoint = "127.0.0.1:${var.base_port + 38}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev039" {
      endpoint = "127.0.0.1:${var.base_port + 39}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev040" {
      endpoint = "127.0.0.1:${var.base_port + 40}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev041" {
      endpoint = "127.0.0.1:${var.base_port + 41}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev042" {
      endpoint = "127.0.0.1:${var.base_port + 42}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev043" {
      endpoint = "127.0.0.1:${var.base_port + 43}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev044" {
      endpoint = "127.0.0.1:${var.base_port + 44}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev045" {
      endpoint = "127.0.0.1:${var.base_port + 45}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev046" {
      endpoint = "127.0.0.1:${var.base_port + 46}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev047" {
      endpoint = "127.0.0.1:${var.base_port + 47}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev048" {
      endpoint = "127.0.0.1:${var.base_port + 48}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev049" {
      endpoint = "127.0.0.1:${var.base_port + 49}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev050" {
      endpoint = "127.0.0.1:${var.base_port + 50}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev051" {
      endpoint = "127.0.0.1:${var.base_port + 51}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev052" {
      endpoint = "127.0.0.1:${var.base_port + 52}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev053" {
      endpoint = "127.0.0.1:${var.base_port + 53}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev054" {
      endpoint = "127.0.0.1:${var.base_port + 54}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev055" {
      endpoint = "127.0.0.1:${var.base_port + 55}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev056" {
      endpoint = "127.0.0.1:${var.base_port + 56}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev057" {
      endpoint = "127.0.0.1:${var.base_port + 57}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev058" {
      endpoint = "127.0.0.1:${var.base_port + 58}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev059" {
      endpoint = "127.0.0.1:${var.base_port + 59}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev060" {
      endpoint = "127.0.0.1:${var.base_port + 60}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev061" {
      endpoint = "127.0.0.1:${var.base_port + 61}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev062" {
      endpoint = "127.0.0.1:${var.base_port + 62}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev063" {
      endpoint = "127.0.0.1:${var.base_port + 63}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev064" {
      endpoint = "127.0.0.1:${var.base_port + 64}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev065" {
      endpoint = "127.0.0.1:${var.base_port + 65}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev066" {
      endpoint = "127.0.0.1:${var.base_port + 66}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev067" {
      endpoint = "127.0.0.1:${var.base_port + 67}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev068" {
      endpoint = "127.0.0.1:${var.base_port + 68}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev069" {
      endpoint = "127.0.0.1:${var.base_port + 69}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev070" {
      endpoint = "127.0.0.1:${var.base_port + 70}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev071" {
      endpoint = "127.0.0.1:${var.base_port + 71}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev072" {
      endpoint = "127.0.0.1:${var.base_port + 72}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev073" {
      endpoint = "127.0.0.1:${var.base_port + 73}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev074" {
      endpoint = "127.0.0.1:${var.base_port + 74}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev075" {
      endpoint = "127.0.0.1:${var.base_port + 75}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev076" {
      endpoint = "127.0.0.1:${var.base_port + 76}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev077" {
      endpoint = "127.0.0.1:${var.base_port + 77}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev078" {
      endpoint = "127.0.0.1:${var.base_port + 78}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev079" {
      endpoint = "127.0.0.1:${var.base_port + 79}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev080" {
      endpoint = "127.0.0.1:${var.base_port + 80}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev081" {
      endpoint = "127.0.0.1:${var.base_port + 81}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev082" {
      endpoint = "127.0.0.1:${var.base_port + 82}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev083" {
      endpoint = "127.0.0.1:${var.base_port + 83}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev084" {
      endpoint = "127.0.0.1:${var.base_port + 84}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev085" {
      endpoint = "127.0.0.1:${var.base_port + 85}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev086" {
      endpoint = "127.0.0.1:${var.base_port + 86}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev087" {
      endpoint = "127.0.0.1:${var.base_port + 87}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev088" {
      endpoint = "127.0.0.1:${var.base_port + 88}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev089" {
      endpoint = "127.0.0.1:${var.base_port + 89}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev090" {
      endpoint = "127.0.0.1:${var.base_port + 90}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev091" {
      endpoint = "127.0.0.1:${var.base_port + 91}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev092" {
      endpoint = "127.0.0.1:${var.base_port + 92}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev093" {
      endpoint = "127.0.0.1:${var.base_port + 93}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev094" {
      endpoint = "127.0.0.1:${var.base_port + 94}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev095" {
      endpoint = "127.0.0.1:${var.base_port + 95}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev096" {
      endpoint = "127.0.0.1:${var.base_port + 96}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev097" {
      endpoint = "127.0.0.1:${var.base_port + 97}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev098" {
      endpoint = "127.0.0.1:${var.base_port + 98}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }

    device "dev099" {
      endpoint = "127.0.0.1:${var.base_port + 99}"
      tag "r" {
        address = 1000
        count   = 100
      }
    }
  }

  sink "discard" "out" {
    inputs = [source.devices]
  }
}
