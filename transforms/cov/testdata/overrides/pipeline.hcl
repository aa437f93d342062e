variable "input" {}
variable "output" {}

pipeline "golden" {
  source "file" "in" {
    path = var.input
  }

  transform "cov" "changes" {
    inputs   = [source.in]
    deadband = 10

    override {
      match    = "line1/*"
      deadband = 0.1
    }

    override {
      match = "*/valve_?"
      mode  = "percent"
    }

    override {
      match    = "*/temp"
      deadband = 5
    }
  }

  sink "file" "out" {
    inputs = [transform.changes]
    path   = var.output
  }
}
