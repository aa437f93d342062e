variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "cov" "changes" {
    inputs   = [source.in]
    deadband = 100
  }

  sink "file" "out" {
    inputs = [transform.changes]
    path   = var.output
  }
}
