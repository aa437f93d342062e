pipeline "p" {
  source "sim" "s" {}

  transform "expr" "e" {
    inputs = [source.s]
    where  = "quality == 'good' && nosuch > 1"
  }

  sink "discard" "d" {
    inputs = [transform.e]
  }
}
