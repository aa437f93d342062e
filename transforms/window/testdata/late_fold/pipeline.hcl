variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "window" "w" {
    inputs     = [source.in]
    size       = "10s"
    aggregates = ["sum"]
    keep_tag   = true
    late       = "fold"
  }

  sink "file" "out" {
    inputs = [transform.w]
    path   = var.output
  }
}
