# bench scenario "engine": the engine alone — simulated signals at a high rate
# through to a discarding sink. No external service.

pipeline "engine" {
  source "sim" "plant" {
    assets       = 100
    tags         = 100
    interval     = "100ms"
    change_ratio = 0.5
    batch_size   = 1000
  }

  sink "discard" "null" {
    inputs = [source.plant]
  }
}
