# The prod stage: two tasks of everything that serves or works (one per
# zone at least), on-demand Fargate, point-in-time recovery and deletion
# protection on the tables, three months of logs.

locals {
  stage = "prod"
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
  point_in_time_recovery = true
  deletion_protection    = true
  force_destroy          = false
  log_retention_days     = 90
  log_level              = "info"

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
  nats_instance_type       = "m7g.medium"
  nats_volume_size_gib     = 50

  components = {
    gateway  = { cpu = 512, memory = 1024, min = 2, max = 6 }
    resolver = { cpu = 512, memory = 1024, min = 2, max = 6, backlog_per_task = 8 }
    fetcher  = { cpu = 1024, memory = 2048, min = 2, max = 20, backlog_per_task = 4 }
    encoder  = { cpu = 2048, memory = 4096, min = 2, max = 20, backlog_per_task = 4 }
    recorder = { cpu = 256, memory = 512, min = 2, max = 2 }
  }
}
