# Store-and-forward: simulated plant signals to a local file through a disk
# buffer. Stop flowd, or make out/ unwritable, and the points wait on disk
# (see /api/status: buffer points, bytes, oldest_s); they are delivered in
# order once the sink is back, also after a restart or a kill -9.
#   flowd run pipelines/store-and-forward.hcl

pipeline "saf" {
  stall_timeout = "1m"

  source "sim" "plant" {
    assets   = 10
    tags     = 20
    interval = "500ms"
  }

  sink "file" "local" {
    inputs = [source.plant]
    path   = "out/store-and-forward.jsonl"

    buffer {
      type      = "disk"
      max_size  = "512MiB"
      when_full = "block"
      fsync     = "batch"
    }
  }
}
