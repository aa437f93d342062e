# The demo: simulated plant signals through to a local file and the console.
# No external service is needed:  make run  (or: flowd run pipelines/demo.hcl)

pipeline "demo" {
  latency_slo = "2s"

  source "sim" "plant" {
    assets       = 3
    tags         = 7
    interval     = "500ms"
    change_ratio = 0.6
  }

  sink "file" "local" {
    inputs = [source.plant]
    path   = "out/demo.jsonl"
    mode   = "truncate"
  }

  sink "stdout" "console" {
    inputs = [source.plant]
    sample = 20
  }
}
