locals {
  x = templatefile("x.tpl", {})
}
