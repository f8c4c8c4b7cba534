variable "common" {
  description = "What every component of a stage shares (see modules/butakero)."
  type = object({
    stage              = string
    image              = string
    region             = string
    cluster_arn        = string
    cluster_name       = string
    cpu_architecture   = string
    subnet_ids         = list(string)
    security_group_ids = list(string)
    environment        = map(string)
    secrets            = map(string)
    secret_files = map(object({
      env        = string
      secret_arn = string
    }))
    log_retention_days = number
  })
}

variable "size" {
  description = "Task size and bounds: cpu units, memory MiB, min and max tasks, the backlog-per-task target (0: none), the capacity provider."
  type = object({
    cpu               = number
    memory            = number
    min               = number
    max               = number
    backlog_per_task  = optional(number, 0)
    capacity_provider = optional(string, "FARGATE")
  })
}

variable "storage" {
  description = "The bucket's and tables' ARNs (modules/storage), and the variables that select the blob store (blob_environment) and the DynamoDB tables (table_environment)."
  type = object({
    bucket_arn           = string
    operations_table_arn = string
    songs_table_arn      = string
    blob_environment     = map(string)
    table_environment    = map(string)
  })
}

variable "youtube_api_key_secret_arn" {
  description = "Secrets Manager secret holding YOUTUBE_API_KEY."
  type        = string
}

variable "ytdlp_cookies_secret_arn" {
  description = "Secrets Manager secret holding a yt-dlp cookies file (Netscape format); empty for none."
  type        = string
  default     = ""
}

variable "allowed_media_hosts" {
  description = "ALLOWED_MEDIA_HOSTS: hosts besides YouTube's whose URLs may be fetched directly."
  type        = string
  default     = ""
}
