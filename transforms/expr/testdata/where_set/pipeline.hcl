variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "expr" "scale" {
    inputs = [source.in]
    where  = "quality == 'good'"
    set = {
      value        = "tag == 'temperature' ? round(c_to_f(value), 1) : value"
      tag          = "tag == 'temperature' ? 'temperature_f' : tag"
      "attrs.unit" = "tag == 'temperature' ? 'F' : attrs.unit"
      asset        = "asset == '' ? 'unknown' : upper(asset)"
    }
  }

  sink "file" "out" {
    inputs = [transform.scale]
    path   = var.output
  }
}
