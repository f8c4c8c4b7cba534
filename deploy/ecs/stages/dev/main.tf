# The dev stage: the smallest tasks, Spot for the stage workers, short log
# retention, tables that may be destroyed.

locals {
  stage = "dev"
}

module "butakero" {
  source = "../../modules/butakero"

  stage            = local.stage
  region           = var.region
  image            = var.image
  cpu_architecture = var.cpu_architecture

  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids

  bucket_name            = var.bucket_name
  point_in_time_recovery = false
  deletion_protection    = false
  force_destroy          = true
  log_retention_days     = 7
  log_level              = "debug"

  public_url          = var.public_url
  certificate_arn     = var.certificate_arn
  allowed_origins     = var.allowed_origins
  allowed_media_hosts = var.allowed_media_hosts

  api_keys_secret_arn        = var.api_keys_secret_arn
  youtube_api_key_secret_arn = var.youtube_api_key_secret_arn
  ytdlp_cookies_secret_arn   = var.ytdlp_cookies_secret_arn
  ytdlp_proxy_secret_arn     = var.ytdlp_proxy_secret_arn

  nats_url                 = var.nats_url
  stream_replicas          = var.stream_replicas
  nats_user                = var.nats_user
  nats_password_secret_arn = var.nats_password_secret_arn
  nats_token_secret_arn    = var.nats_token_secret_arn
  nats_creds_secret_arn    = var.nats_creds_secret_arn
  nats_tls_ca_secret_arn   = var.nats_tls_ca_secret_arn
  nats_tls_cert_secret_arn = var.nats_tls_cert_secret_arn
  nats_tls_key_secret_arn  = var.nats_tls_key_secret_arn
  nats_instance_type       = "t4g.small"
  nats_volume_size_gib     = 10

  # cpu in units (1024 = 1 vCPU), memory in MiB; backlog_per_task is the
  # target of the consumer's backlog divided by the running tasks.
  components = {
    gateway  = { cpu = 256, memory = 512, min = 1, max = 2 }
    resolver = { cpu = 256, memory = 512, min = 1, max = 2, backlog_per_task = 8, capacity_provider = "FARGATE_SPOT" }
    fetcher  = { cpu = 512, memory = 1024, min = 1, max = 3, backlog_per_task = 4, capacity_provider = "FARGATE_SPOT" }
    encoder  = { cpu = 1024, memory = 2048, min = 1, max = 3, backlog_per_task = 2, capacity_provider = "FARGATE_SPOT" }
    recorder = { cpu = 256, memory = 512, min = 1, max = 1 }
  }
}
