variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "window" "w" {
    inputs     = [source.in]
    size       = "10s"
    aggregates = ["avg", "min", "max", "sum", "count", "first", "last", "stddev"]
  }

  sink "file" "out" {
    inputs = [transform.w]
    path   = var.output
  }
}
