variable "in" {
  type = string
}

output "out" {
  value = upper(var.in)
}
