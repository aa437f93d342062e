variable "input" {}
variable "output" {}

# Points whose expression fails go to the dead-letter sink with the reason.
pipeline "golden" {
  dead_letter = sink.rejected

  source "file" "in" {
    path = var.input
  }

  transform "expr" "convert" {
    inputs = [source.in]
    set    = { value = "c_to_f(value)" }
  }

  sink "discard" "main" {
    inputs = [transform.convert]
  }

  # The dead-letter sink also needs an input: one that lets nothing through.
  transform "expr" "nothing" {
    inputs = [source.in]
    where  = "false"
  }

  sink "file" "rejected" {
    inputs = [transform.nothing]
    path   = var.output
  }
}
