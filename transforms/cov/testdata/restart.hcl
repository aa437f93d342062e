variable "input" {}
variable "output" {}

# Run twice with the same data directory: the second run sends nothing that
# the first already reported.
pipeline "restart" {
  source "file" "in" {
    path = var.input
  }

  transform "cov" "changes" {
    inputs     = [source.in]
    deadband   = 1
    state_file = "cov/state.jsonl"
  }

  sink "file" "out" {
    inputs = [transform.changes]
    path   = var.output
  }
}
