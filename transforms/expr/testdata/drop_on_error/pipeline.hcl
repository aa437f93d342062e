variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  # Strings cannot be converted: those points are dropped (and counted).
  transform "expr" "convert" {
    inputs        = [source.in]
    where         = "value > 0"
    set           = { value = "bar_to_psi(value)", quality = "value > 10 ? 'uncertain' : quality", ts = "ts + 1000" }
    drop_on_error = true
  }

  sink "file" "out" {
    inputs = [transform.convert]
    path   = var.output
  }
}
