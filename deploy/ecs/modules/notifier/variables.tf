variable "webhook_urls" {
  description = "WEBHOOK_URL: the comma-separated URLs every final outcome is POSTed to, each on a host webhook_allowed_hosts lists."
  type        = string

  validation {
    condition     = var.webhook_urls != ""
    error_message = "The notifier runs only with a WEBHOOK_URL (modules/butakero creates it only then)."
  }
}

variable "webhook_secret_arn" {
  description = "Secrets Manager secret holding WEBHOOK_SECRET (whsec_ and the base64 of 24 to 64 random bytes), which signs the deliveries."
  type        = string

  validation {
    condition     = var.webhook_secret_arn != ""
    error_message = "WEBHOOK_URL is set: the notifier needs WEBHOOK_SECRET's secret to sign the deliveries."
  }
}

variable "webhook_allowed_hosts" {
  description = "WEBHOOK_ALLOWED_HOSTS: the hosts deliveries may reach (ALLOWED_MEDIA_HOSTS' syntax); every WEBHOOK_URL's host must be among them."
  type        = string
}

variable "webhook_max_age" {
  description = "WEBHOOK_MAX_AGE: how long after its event a delivery the receiver does not accept is retried (at least 1m)."
  type        = string
  default     = "24h"
}
