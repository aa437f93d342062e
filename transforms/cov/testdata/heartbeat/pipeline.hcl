variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "cov" "changes" {
    inputs    = [source.in]
    deadband  = 100
    heartbeat = "10s"
  }

  sink "file" "out" {
    inputs = [transform.changes]
    path   = var.output
  }
}
