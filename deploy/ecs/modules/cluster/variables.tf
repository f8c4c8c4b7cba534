variable "name" {
  description = "The cluster's name, e.g. butakero-prod."
  type        = string
}

variable "vpc_id" {
  type = string
}
