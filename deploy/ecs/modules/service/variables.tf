variable "name" {
  description = "The component: gateway, resolver, fetcher, encoder, recorder or notifier. Also the image's command."
  type        = string
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
  description = "The task role's policy: the component's adapters' actions; empty for a component that calls no AWS service (the role then has no policy)."
  type        = string
  default     = ""
}

variable "consumer" {
  description = "The durable consumer the component reads (events.Consumer*); empty for the gateway."
  type        = string
  default     = ""
}

variable "cpu_target_percent" {
  description = "Target average CPU; 0 means no CPU scaling."
  type        = number
  default     = 0
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

variable "extra_security_group_ids" {
  description = "Security groups of this component's tasks beside the stage's (common.security_group_ids)."
  type        = list(string)
  default     = []
}
