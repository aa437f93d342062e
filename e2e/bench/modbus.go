package bench

import (
	"fmt"
	"strings"
)

// modbusPipeline is the pipeline of the modbus bench scenarios, made at run
// time so that they poll the very same devices: one device block per
// simulated device (flowd sim modbus on consecutive ports from var.base_port),
// each one read of registers holding registers from address 1000 every
// var.interval. Into discard ("modbus", "modbus-10hz": the cost of polling
// and decoding, no broker in the way), or, toKafka ("peer-modbus"), into
// Kafka one record per device poll (asset_json), as Telegraf's inputs.modbus
// writes one metric of all a device's registers per poll (telegrafModbus).
func modbusPipeline(name string, devices, registers int, toKafka bool) func() string {
	return func() string {
		var b strings.Builder
		b.WriteString(`variable "base_port" {
  default = 5020
}

variable "interval" {
  default = "1s"
}
`)
		if toKafka {
			fmt.Fprintf(&b, `
variable "kafka" {
  default = "127.0.0.1:19092"
}

variable "topic" {
  default = "flowd-bench-%s"
}
`, name)
		}
		fmt.Fprintf(&b, `
pipeline %q {
  latency_slo = "10s"

  source "modbus" "devices" {
    interval = var.interval
    timeout  = "2s"
`, name)
		for d := 0; d < devices; d++ {
			fmt.Fprintf(&b, `
    device "dev%03d" {
      endpoint = "127.0.0.1:${var.base_port + %d}"
      tag "r" {
        address = 1000
        count   = %d
      }
    }
`, d, d, registers)
		}
		if toKafka {
			b.WriteString(`  }

  sink "kafka" "cloud" {
    inputs       = [source.devices]
    brokers      = [var.kafka]
    topic        = var.topic
    format       = "asset_json"
    create_topic = true
    partitions   = 3
    # Telegraf's kafka output compresses nothing by default: the same
    # bytes to the broker on both sides.
    compression = "none"
  }
}
`)
		} else {
			b.WriteString(`  }

  sink "discard" "out" {
    inputs = [source.devices]
  }
}
`)
		}
		return b.String()
	}
}
