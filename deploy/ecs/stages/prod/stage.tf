# The prod stage: two tasks of everything that serves or works (one per
# zone at least), on-demand Fargate, point-in-time recovery and deletion
# protection on the tables, three months of logs.

locals {
  stage = "prod"

  # What the stage chooses; ../../root/main.tf passes it to modules/butakero.
  settings = {
    point_in_time_recovery = true
    deletion_protection    = true
    force_destroy          = false
    log_retention_days     = 90
    log_level              = "info"
    nats_instance_type     = "m7g.medium"
    nats_volume_size_gib   = 50

    components = {
      gateway  = { cpu = 512, memory = 1024, min = 2, max = 6 }
      resolver = { cpu = 512, memory = 1024, min = 2, max = 6, backlog_per_task = 8 }
      fetcher  = { cpu = 1024, memory = 2048, min = 2, max = 20, backlog_per_task = 4 }
      encoder  = { cpu = 2048, memory = 4096, min = 2, max = 20, backlog_per_task = 4 }
      recorder = { cpu = 256, memory = 512, min = 2, max = 2 }
      notifier = { cpu = 256, memory = 512, min = 2, max = 2 }
    }
  }
}
