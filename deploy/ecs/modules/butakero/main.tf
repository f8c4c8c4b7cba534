# One Butakero stage: the bucket and tables, the cluster, NATS (the
# three-node cluster of modules/nats unless nats_url names an existing
# one), and the components, each its own ECS service: the five of the
# pipeline, and the notifier when webhook_urls names a receiver.
#
# Each component opens only the stores it uses (services/<name>/<name>/
# alone.go, through platform/store), and its task gets only their names:
# BUCKET_NAME for the blob store (gateway, fetcher, encoder), both table
# names for the projections (gateway, recorder) and the search cache in the
# songs table (resolver: config.Load wants both names or neither, and its
# role reaches the songs table alone); the notifier opens none. The roles
# grant only what each component's code calls.

locals {
  name = "butakero-${var.stage}"

  external_nats = var.nats_url != ""

  # The notifier runs only with a receiver to deliver to.
  notifier = var.webhook_urls != ""

  nats_url        = local.external_nats ? var.nats_url : join(",", module.nats[*].url)
  stream_replicas = local.external_nats ? var.stream_replicas : 3

  # Traces go to the collector when one is named; each component is its
  # own service (butakero-<component>) in the trace backend.
  otel_environment = var.otel_exporter_otlp_endpoint == "" ? {} : {
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otel_exporter_otlp_endpoint
    OTEL_EXPORTER_OTLP_PROTOCOL = var.otel_exporter_otlp_protocol
    OTEL_RESOURCE_ATTRIBUTES    = "deployment.environment=${var.stage}"
  }

  # NATS credentials: the cluster's own user and password, or what the
  # existing cluster wants (any of user and password, a token, a
  # credentials file, TLS files).
  nats_environment = local.external_nats ? (var.nats_user == "" ? {} : { NATS_USER = var.nats_user }) : {
    NATS_USER = join("", module.nats[*].client_user)
  }
  nats_secrets = local.external_nats ? {
    for k, arn in {
      NATS_PASSWORD = var.nats_password_secret_arn
      NATS_TOKEN    = var.nats_token_secret_arn
    } : k => arn if arn != ""
    } : {
    NATS_PASSWORD = join("", module.nats[*].client_password_secret_arn)
  }
  nats_secret_files = !local.external_nats ? {} : {
    for file, f in {
      "nats.creds"    = { env = "NATS_CREDS", secret_arn = var.nats_creds_secret_arn }
      "nats-ca.pem"   = { env = "NATS_TLS_CA", secret_arn = var.nats_tls_ca_secret_arn }
      "nats-cert.pem" = { env = "NATS_TLS_CERT", secret_arn = var.nats_tls_cert_secret_arn }
      "nats-key.pem"  = { env = "NATS_TLS_KEY", secret_arn = var.nats_tls_key_secret_arn }
    } : file => f if f.secret_arn != ""
  }

  common = {
    stage              = var.stage
    image              = var.image
    region             = var.region
    cluster_arn        = module.cluster.arn
    cluster_name       = module.cluster.name
    cpu_architecture   = var.cpu_architecture
    subnet_ids         = var.private_subnet_ids
    security_group_ids = [module.cluster.tasks_security_group_id]
    log_retention_days = var.log_retention_days
    secrets            = local.nats_secrets
    secret_files       = local.nats_secret_files
    environment = merge({
      NATS_URL        = local.nats_url
      STREAM_REPLICAS = tostring(local.stream_replicas)
      REGION          = var.region
      AWS_AUTO_CREATE = "false"
      LOG_FORMAT      = "json"
      LOG_LEVEL       = var.log_level
      MAX_ATTEMPTS    = tostring(var.max_attempts)
      STAGE_TIMEOUT   = var.stage_timeout
      SHUTDOWN_GRACE  = "20s"
    }, local.nats_environment, local.otel_environment)
    # The stores' ARNs, for the roles, and the environment that selects
    # each store, for the components that open it.
    storage = {
      bucket_arn           = module.storage.bucket_arn
      operations_table_arn = module.storage.operations_table_arn
      songs_table_arn      = module.storage.songs_table_arn
      blob_environment = {
        BUCKET_NAME = module.storage.bucket_name
      }
      table_environment = {
        DYNAMODB_TABLE_NAME_OPERATION = module.storage.operations_table_name
        DYNAMODB_TABLE_NAME_SONGS     = module.storage.songs_table_name
      }
    }
  }
}

module "storage" {
  source = "../storage"

  name                   = local.name
  bucket_name            = var.bucket_name
  point_in_time_recovery = var.point_in_time_recovery
  deletion_protection    = var.deletion_protection
  force_destroy          = var.force_destroy
}

module "cluster" {
  source = "../cluster"

  name   = local.name
  vpc_id = var.vpc_id
}

module "nats" {
  source = "../nats"
  count  = local.external_nats ? 0 : 1

  name                      = local.name
  vpc_id                    = var.vpc_id
  subnet_ids                = var.private_subnet_ids
  client_security_group_ids = [module.cluster.tasks_security_group_id]
  instance_type             = var.nats_instance_type
  architecture              = var.nats_architecture
  volume_size_gib           = var.nats_volume_size_gib
}

module "gateway" {
  source = "../gateway"

  common = local.common
  size   = var.components.gateway

  vpc_id              = var.vpc_id
  public_subnet_ids   = var.public_subnet_ids
  certificate_arn     = var.certificate_arn
  public_url          = var.public_url
  allowed_origins     = var.allowed_origins
  api_keys_secret_arn = var.api_keys_secret_arn
}

module "resolver" {
  source = "../resolver"

  common = local.common
  size   = var.components.resolver

  youtube_api_key_secret_arn = var.youtube_api_key_secret_arn
  ytdlp_cookies_secret_arn   = var.ytdlp_cookies_secret_arn
  allowed_media_hosts        = var.allowed_media_hosts
}

module "fetcher" {
  source = "../fetcher"

  common = local.common
  size   = var.components.fetcher

  ytdlp_cookies_secret_arn = var.ytdlp_cookies_secret_arn
  ytdlp_proxy_secret_arn   = var.ytdlp_proxy_secret_arn
  allowed_media_hosts      = var.allowed_media_hosts
}

module "encoder" {
  source = "../encoder"

  common = local.common
  size   = var.components.encoder
}

module "recorder" {
  source = "../recorder"

  common = local.common
  size   = var.components.recorder
}

# Without a webhook URL there is nothing to deliver: no notifier service
# (rather than one of no tasks), so no task definition, role or log group,
# and no WEBHOOK_SECRET to provide.
module "notifier" {
  source = "../notifier"
  count  = local.notifier ? 1 : 0

  common = local.common
  size   = var.components.notifier

  webhook_urls          = var.webhook_urls
  webhook_secret_arn    = var.webhook_secret_arn
  webhook_allowed_hosts = var.webhook_allowed_hosts
  webhook_max_age       = var.webhook_max_age
}
