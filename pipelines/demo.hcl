# The demo: simulated plant signals, scaled and filtered, through to a local
# file and the console. No external service is needed:
#   make run  (or: flowd run pipelines/demo.hcl)

pipeline "demo" {
  latency_slo = "2s"

  source "sim" "plant" {
    assets       = 3
    tags         = 7
    interval     = "500ms"
    change_ratio = 0.6
    bad_ratio    = 0.02 # a failing sensor now and then, for the filter below
  }

  # Keep good values, report temperatures in °F and pressures in psi.
  transform "expr" "scale" {
    inputs = [source.plant]
    where  = "quality == 'good'"
    set = {
      value        = "tag == 'temperature' ? round(c_to_f(value), 2) : tag == 'pressure' ? round(bar_to_psi(value), 2) : value"
      "attrs.unit" = "tag == 'temperature' ? 'F' : tag == 'pressure' ? 'psi' : ''"
    }
  }

  # Only changes go on: beyond 0.5 for numbers, any change otherwise, and
  # every tag at least once a minute.
  transform "cov" "changes" {
    inputs    = [transform.scale]
    deadband  = 0.5
    heartbeat = "60s"

    override {
      match    = "*/vibration"
      mode     = "percent"
      deadband = 5
    }
  }

  sink "file" "local" {
    inputs = [transform.changes]
    path   = "out/demo.jsonl"
    mode   = "truncate"
  }

  sink "stdout" "console" {
    inputs = [transform.changes]
    sample = 20
  }
}
