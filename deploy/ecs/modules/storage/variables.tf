variable "name" {
  description = "Prefix of the tables' names, e.g. butakero-prod."
  type        = string
}

variable "bucket_name" {
  description = "The S3 bucket's name (BUCKET_NAME); globally unique."
  type        = string
}

variable "staging_expiration_days" {
  description = "Days after which a staged download still in staging/ is deleted by S3."
  type        = number
  default     = 2
}

variable "point_in_time_recovery" {
  description = "Continuous backups of both tables (they can also be rebuilt from the stream)."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse to delete the tables."
  type        = bool
  default     = false
}

variable "force_destroy" {
  description = "Let terraform destroy delete a bucket that still holds audio."
  type        = bool
  default     = false
}
