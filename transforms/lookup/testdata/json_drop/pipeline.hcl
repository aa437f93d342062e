variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  # Only known pumps go on; the table's values win over the points' own attrs.
  transform "lookup" "pumps" {
    inputs    = [source.in]
    path      = "testdata/json_drop/tags.json"
    columns   = ["model", "rated_kw"]
    on_miss   = "drop"
    overwrite = true
  }

  sink "file" "out" {
    inputs = [transform.pumps]
    path   = var.output
  }
}
