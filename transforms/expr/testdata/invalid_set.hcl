pipeline "p" {
  source "sim" "s" {}

  transform "expr" "e" {
    inputs = [source.s]
    set = {
      tag   = "tag"
      value = "value * (2 +"
    }
  }

  sink "discard" "d" {
    inputs = [transform.e]
  }
}
