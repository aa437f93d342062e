variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  # One tag tracked: the points of l1/u pass as they came.
  transform "window" "w" {
    inputs     = [source.in]
    size       = "10s"
    aggregates = ["sum"]
    max_tags   = 1
  }

  sink "file" "out" {
    inputs = [transform.w]
    path   = var.output
  }
}
