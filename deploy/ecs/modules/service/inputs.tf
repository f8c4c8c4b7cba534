# What a component gets from its stage (modules/butakero), declared once:
# this file is modules/service's own, and every component module
# (modules/gateway … notifier) links it as its inputs.tf, passing both on
# to modules/service.

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
    # The bucket's and tables' ARNs (modules/storage), for the task roles,
    # and the variables that select the blob store (blob_environment) and
    # the DynamoDB tables (table_environment), for the components that
    # open them.
    storage = object({
      bucket_arn           = string
      operations_table_arn = string
      songs_table_arn      = string
      blob_environment     = map(string)
      table_environment    = map(string)
    })
  })
}

variable "size" {
  description = "Task size and bounds: cpu units (1024 = 1 vCPU), memory MiB, min tasks (also the count at creation; at least 1 for a service that scales on its backlog) and max tasks, the backlog-per-task target (0: no backlog scaling), the capacity provider (FARGATE or FARGATE_SPOT)."
  type = object({
    cpu               = number
    memory            = number
    min               = number
    max               = number
    backlog_per_task  = optional(number, 0)
    capacity_provider = optional(string, "FARGATE")
  })
}
