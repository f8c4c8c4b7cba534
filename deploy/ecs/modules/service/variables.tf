variable "stage" {
  description = "dev or prod: names, log groups and the backlog metric's Deployment dimension."
  type        = string
}

variable "name" {
  description = "The component: gateway, resolver, fetcher, encoder or recorder. Also the image's command."
  type        = string
}

variable "image" {
  description = "The butakero image."
  type        = string
}

variable "region" {
  type = string
}

variable "cluster_arn" {
  type = string
}

variable "cluster_name" {
  type = string
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: what the image is built for."
  type        = string
  default     = "X86_64"
}

variable "capacity_provider" {
  description = "FARGATE or FARGATE_SPOT."
  type        = string
  default     = "FARGATE"
}

variable "environment" {
  description = "Plain environment variables."
  type        = map(string)
}

variable "secrets" {
  description = "Environment variables read from Secrets Manager: name => secret ARN."
  type        = map(string)
  default     = {}
}

variable "secret_files" {
  description = "Secrets the code reads from a file: file name => { env = the variable that names the file, secret_arn }."
  type = map(object({
    env        = string
    secret_arn = string
  }))
  default = {}
}

variable "task_policy_json" {
  description = "The task role's policy: the component's adapters' actions."
  type        = string
}

variable "subnet_ids" {
  type = list(string)
}

variable "security_group_ids" {
  type = list(string)
}

variable "min_count" {
  description = "Fewest tasks (also the count at creation). At least 1 for a service that scales on its backlog."
  type        = number
}

variable "max_count" {
  type = number
}

variable "consumer" {
  description = "The durable consumer the component reads (events.Consumer*); empty for the gateway."
  type        = string
  default     = ""
}

variable "backlog_target_per_task" {
  description = "Target of backlog / running tasks; 0 means no backlog scaling."
  type        = number
  default     = 0
}

variable "cpu_target_percent" {
  description = "Target average CPU; 0 means no CPU scaling."
  type        = number
  default     = 0
}

variable "log_retention_days" {
  type = number
}

variable "container_port" {
  description = "The port the container listens on; 0 for none."
  type        = number
  default     = 0
}

variable "target_group_arn" {
  description = "A load balancer target group for the container's port; empty for none."
  type        = string
  default     = ""
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL: SHUTDOWN_GRACE plus the drain (Fargate allows up to 120)."
  type        = number
  default     = 60
}
