variable "stage" {
  description = "dev or prod."
  type        = string
}

variable "region" {
  type = string
}

variable "image" {
  description = "The butakero image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/butakero:1.0.0. Each component runs it with its name as the command."
  type        = string
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: what the image is built for."
  type        = string
  default     = "X86_64"
}

variable "vpc_id" {
  type = string
}

variable "public_subnet_ids" {
  description = "The load balancer's subnets."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "The tasks' and NATS nodes' subnets: three, in three zones, with a route to the internet (NAT) for YouTube and the image."
  type        = list(string)
}

variable "bucket_name" {
  description = "BUCKET_NAME; globally unique."
  type        = string
}

variable "point_in_time_recovery" {
  type    = bool
  default = false
}

variable "deletion_protection" {
  type    = bool
  default = false
}

variable "force_destroy" {
  type    = bool
  default = false
}

variable "log_retention_days" {
  type = number
}

variable "log_level" {
  type    = string
  default = "info"
}

variable "otel_exporter_otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT of every task; empty: no traces exported"
  type        = string
  default     = ""
}

variable "otel_exporter_otlp_protocol" {
  description = "OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf or grpc)"
  type        = string
  default     = "http/protobuf"
  validation {
    condition     = contains(["http/protobuf", "grpc"], var.otel_exporter_otlp_protocol)
    error_message = "otel_exporter_otlp_protocol is http/protobuf or grpc."
  }
}

variable "max_attempts" {
  description = "MAX_ATTEMPTS"
  type        = number
  default     = 3
}

variable "stage_timeout" {
  description = "STAGE_TIMEOUT"
  type        = string
  default     = "4m"
}

variable "certificate_arn" {
  type    = string
  default = ""
}

variable "public_url" {
  type = string
}

variable "allowed_origins" {
  type    = string
  default = ""
}

variable "allowed_media_hosts" {
  type    = string
  default = ""
}

variable "api_keys_secret_arn" {
  type = string
}

variable "youtube_api_key_secret_arn" {
  type = string
}

variable "ytdlp_cookies_secret_arn" {
  type    = string
  default = ""
}

variable "ytdlp_proxy_secret_arn" {
  type    = string
  default = ""
}

variable "webhook_urls" {
  description = "WEBHOOK_URL: comma-separated URLs every final outcome is POSTed to, signed; empty (the default) runs no notifier."
  type        = string
  default     = ""
}

variable "webhook_secret_arn" {
  description = "Secrets Manager secret holding WEBHOOK_SECRET; required with webhook_urls."
  type        = string
  default     = ""
}

variable "webhook_allowed_hosts" {
  description = "WEBHOOK_ALLOWED_HOSTS: the hosts deliveries may reach; each of webhook_urls must be on one."
  type        = string
  default     = ""
}

variable "webhook_max_age" {
  description = "WEBHOOK_MAX_AGE: how long a delivery is retried after its event."
  type        = string
  default     = "24h"
}

variable "nats_url" {
  description = "An existing NATS cluster's URLs (comma-separated); empty runs the three-node cluster of modules/nats."
  type        = string
  default     = ""
}

variable "stream_replicas" {
  description = "STREAM_REPLICAS on an existing cluster (the own cluster is always 3)."
  type        = number
  default     = 3
}

variable "nats_user" {
  type    = string
  default = ""
}

variable "nats_password_secret_arn" {
  type    = string
  default = ""
}

variable "nats_token_secret_arn" {
  type    = string
  default = ""
}

variable "nats_creds_secret_arn" {
  type    = string
  default = ""
}

variable "nats_tls_ca_secret_arn" {
  type    = string
  default = ""
}

variable "nats_tls_cert_secret_arn" {
  type    = string
  default = ""
}

variable "nats_tls_key_secret_arn" {
  type    = string
  default = ""
}

variable "nats_instance_type" {
  type    = string
  default = "t4g.small"
}

variable "nats_architecture" {
  type    = string
  default = "arm64"
}

variable "nats_volume_size_gib" {
  type    = number
  default = 20
}

variable "components" {
  description = "Each component's task size and bounds, by name: gateway, resolver, fetcher, encoder, recorder and notifier (see modules/service's size); backlog_per_task is required for the three that scale on their consumer's backlog (resolver, fetcher, encoder)."
  type = map(object({
    cpu               = number
    memory            = number
    min               = number
    max               = number
    backlog_per_task  = optional(number)
    capacity_provider = optional(string, "FARGATE")
  }))

  validation {
    condition     = toset(keys(var.components)) == toset(["gateway", "resolver", "fetcher", "encoder", "recorder", "notifier"])
    error_message = "components must name exactly gateway, resolver, fetcher, encoder, recorder and notifier."
  }

  validation {
    condition     = alltrue([for name in ["resolver", "fetcher", "encoder"] : try(var.components[name].backlog_per_task, null) != null])
    error_message = "components.resolver, components.fetcher and components.encoder need a backlog_per_task."
  }
}
