variable "name" {
  description = "Prefix of the nodes' names and the cluster's name, e.g. butakero-prod."
  type        = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "Three private subnets in three availability zones, one node in each."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) == 3
    error_message = "Give exactly three subnets, one per availability zone."
  }
}

variable "client_security_group_ids" {
  description = "Security groups whose members may connect as NATS clients (the tasks)."
  type        = list(string)
}

variable "instance_type" {
  description = "EC2 instance type of each node; its architecture must be var.architecture."
  type        = string
  default     = "t4g.small"
}

variable "architecture" {
  description = "arm64 or x86_64, for the image and the nats-server release."
  type        = string
  default     = "arm64"
}

variable "volume_size_gib" {
  description = "Size of each node's JetStream volume. The stream keeps every event forever."
  type        = number
  default     = 20
}

variable "nats_server_version" {
  description = "nats-server release; the project's tests run the same version."
  type        = string
  default     = "2.15.2"
}
