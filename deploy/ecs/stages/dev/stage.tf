# The dev stage: the smallest tasks, Spot for the stage workers, short log
# retention, tables that may be destroyed.

locals {
  stage = "dev"

  # What the stage chooses; ../../root/main.tf passes it to modules/butakero.
  settings = {
    point_in_time_recovery = false
    deletion_protection    = false
    force_destroy          = true
    log_retention_days     = 7
    log_level              = "debug"
    nats_instance_type     = "t4g.small"
    nats_volume_size_gib   = 10

    # cpu in units (1024 = 1 vCPU), memory in MiB; backlog_per_task is the
    # target of the consumer's backlog divided by the running tasks.
    components = {
      gateway  = { cpu = 256, memory = 512, min = 1, max = 2 }
      resolver = { cpu = 256, memory = 512, min = 1, max = 2, backlog_per_task = 8, capacity_provider = "FARGATE_SPOT" }
      fetcher  = { cpu = 512, memory = 1024, min = 1, max = 3, backlog_per_task = 4, capacity_provider = "FARGATE_SPOT" }
      encoder  = { cpu = 1024, memory = 2048, min = 1, max = 3, backlog_per_task = 2, capacity_provider = "FARGATE_SPOT" }
      recorder = { cpu = 256, memory = 512, min = 1, max = 1 }
      notifier = { cpu = 256, memory = 512, min = 1, max = 1 }
    }
  }
}
