# bench scenario "max-engine": the engine's own ceiling without a broker in
# the way. A simulated plant generating as fast as the pipeline takes points
# (inside flowd, so its cost is counted too) → expr → change of value →
# discard.

pipeline "max-engine" {
  latency_slo = "1s"

  source "sim" "plant" {
    assets       = 1000
    tags         = 100
    interval     = "1s"
    change_ratio = 0.5
    batch_size   = 5000
    fast         = true
  }

  transform "expr" "scale" {
    inputs = [source.plant]
    where  = "quality == 'good'"
    set = {
      value = "type(value) == 'float' ? round(value * 1.8 + 32, 3) : value"
    }
  }

  transform "cov" "changes" {
    inputs   = [transform.scale]
    deadband = 0.01
  }

  sink "discard" "null" {
    inputs = [transform.changes]
  }
}
