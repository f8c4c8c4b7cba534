variable "region" {
  type = string
}

variable "image" {
  description = "The butakero image (a tag or digest in ECR)."
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
  type = list(string)
}

variable "private_subnet_ids" {
  description = "Three private subnets in three zones, with NAT."
  type        = list(string)
}

variable "bucket_name" {
  type = string
}

variable "public_url" {
  description = "PUBLIC_URL, e.g. https://butakero.example."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener; empty serves plain HTTP."
  type        = string
  default     = ""
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
  description = "Secrets Manager secret: API_KEYS."
  type        = string
}

variable "youtube_api_key_secret_arn" {
  description = "Secrets Manager secret: YOUTUBE_API_KEY."
  type        = string
}

variable "ytdlp_cookies_secret_arn" {
  description = "Secrets Manager secret: a yt-dlp cookies file; empty for none."
  type        = string
  default     = ""
}

variable "ytdlp_proxy_secret_arn" {
  description = "Secrets Manager secret: YTDLP_PROXY; empty for none."
  type        = string
  default     = ""
}

variable "webhook_urls" {
  description = "WEBHOOK_URL: comma-separated URLs every final outcome is POSTed to; empty (the default) runs no notifier."
  type        = string
  default     = ""
}

variable "webhook_secret_arn" {
  description = "Secrets Manager secret: WEBHOOK_SECRET (whsec_…); required with webhook_urls."
  type        = string
  default     = ""
}

variable "webhook_allowed_hosts" {
  description = "WEBHOOK_ALLOWED_HOSTS: the hosts deliveries may reach; each of webhook_urls must be on one."
  type        = string
  default     = ""
}

variable "webhook_max_age" {
  description = "WEBHOOK_MAX_AGE"
  type        = string
  default     = "24h"
}

variable "alarm_actions" {
  description = "ARNs (an SNS topic) the CloudWatch alarms notify when they fire and clear; empty: visible in the console only"
  type        = list(string)
  default     = []
}

variable "otel_exporter_otlp_endpoint" {
  description = "OTEL_EXPORTER_OTLP_ENDPOINT of every task: the OTLP collector spans go to (e.g. http://otel-collector:4318); empty: no traces"
  type        = string
  default     = ""
}

variable "otel_exporter_otlp_protocol" {
  description = "OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc"
  type        = string
  default     = "http/protobuf"
}

variable "nats_url" {
  description = "An existing NATS cluster; empty (the default) runs three nodes on EC2."
  type        = string
  default     = ""
}

variable "stream_replicas" {
  type    = number
  default = 3
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
