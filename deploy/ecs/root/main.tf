# The root configuration of every stage: each stages/<stage>/ directory
# links this file, variables.tf, versions.tf and outputs.tf here, and holds
# its own choices in stage.tf (local.stage and local.settings), so that a
# stage is one directory to init, plan and apply, and what the stages share
# is written once. Paths are relative to the stage's directory.

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
  point_in_time_recovery = local.settings.point_in_time_recovery
  deletion_protection    = local.settings.deletion_protection
  force_destroy          = local.settings.force_destroy
  log_retention_days     = local.settings.log_retention_days
  log_level              = local.settings.log_level

  public_url          = var.public_url
  certificate_arn     = var.certificate_arn
  allowed_origins     = var.allowed_origins
  allowed_media_hosts = var.allowed_media_hosts

  api_keys_secret_arn        = var.api_keys_secret_arn
  youtube_api_key_secret_arn = var.youtube_api_key_secret_arn
  ytdlp_cookies_secret_arn   = var.ytdlp_cookies_secret_arn
  ytdlp_proxy_secret_arn     = var.ytdlp_proxy_secret_arn

  webhook_urls          = var.webhook_urls
  webhook_secret_arn    = var.webhook_secret_arn
  webhook_allowed_hosts = var.webhook_allowed_hosts
  webhook_max_age       = var.webhook_max_age

  alarm_actions               = var.alarm_actions
  otel_exporter_otlp_endpoint = var.otel_exporter_otlp_endpoint
  otel_exporter_otlp_protocol = var.otel_exporter_otlp_protocol

  nats_url                 = var.nats_url
  stream_replicas          = var.stream_replicas
  nats_user                = var.nats_user
  nats_password_secret_arn = var.nats_password_secret_arn
  nats_token_secret_arn    = var.nats_token_secret_arn
  nats_creds_secret_arn    = var.nats_creds_secret_arn
  nats_tls_ca_secret_arn   = var.nats_tls_ca_secret_arn
  nats_tls_cert_secret_arn = var.nats_tls_cert_secret_arn
  nats_tls_key_secret_arn  = var.nats_tls_key_secret_arn
  nats_instance_type       = local.settings.nats_instance_type
  nats_volume_size_gib     = local.settings.nats_volume_size_gib

  components = local.settings.components
}
