variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "lookup" "meta" {
    inputs = [source.in]
    path   = "testdata/csv_table/tags.csv"
  }

  sink "file" "out" {
    inputs = [transform.meta]
    path   = var.output
  }
}
