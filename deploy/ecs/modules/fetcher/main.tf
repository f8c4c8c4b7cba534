# The fetcher: video.resolved in, the source audio in staging/ and
# audio.downloaded out. Its blob store port is fetcher.Blobs: Put, Stat
# (is the DCA stored already?), and List and Delete (the staging sweep). It
# writes no DynamoDB item.

locals {
  # Downloads one task runs at once (FETCH_CONCURRENCY).
  concurrency = 2
}

data "aws_iam_policy_document" "task" {
  # s3blob.Store.Put (PutObject, or the multipart calls, which need the same
  # action, and AbortMultipartUpload), Stat (HeadObject: s3:GetObject),
  # Delete (DeleteObject).
  statement {
    sid       = "StageAudio"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${var.storage.bucket_arn}/*"]
  }
  # s3blob.Store.List (ListObjectsV2). It also makes S3 answer a missing
  # key with 404 rather than 403, which Stat relies on.
  statement {
    sid       = "ListStaging"
    actions   = ["s3:ListBucket"]
    resources = [var.storage.bucket_arn]
  }
}

module "service" {
  source = "../service"

  stage            = var.common.stage
  name             = "fetcher"
  image            = var.common.image
  region           = var.common.region
  cluster_arn      = var.common.cluster_arn
  cluster_name     = var.common.cluster_name
  cpu_architecture = var.common.cpu_architecture

  cpu                     = var.size.cpu
  memory                  = var.size.memory
  min_count               = var.size.min
  max_count               = var.size.max
  capacity_provider       = var.size.capacity_provider
  consumer                = "fetcher"
  backlog_target_per_task = var.size.backlog_per_task

  environment = merge(var.common.environment, var.storage.blob_environment, {
    FETCH_CONCURRENCY   = tostring(local.concurrency)
    ALLOWED_MEDIA_HOSTS = var.allowed_media_hosts
    STAGING_MAX_AGE     = "1h"
  })
  secrets = var.ytdlp_proxy_secret_arn == "" ? var.common.secrets : merge(var.common.secrets, {
    YTDLP_PROXY = var.ytdlp_proxy_secret_arn
  })
  secret_files = merge(var.common.secret_files, var.ytdlp_cookies_secret_arn == "" ? {} : {
    "ytdlp-cookies.txt" = { env = "YTDLP_COOKIES_FILE", secret_arn = var.ytdlp_cookies_secret_arn }
  })

  task_policy_json   = data.aws_iam_policy_document.task.json
  subnet_ids         = var.common.subnet_ids
  security_group_ids = var.common.security_group_ids
  log_retention_days = var.common.log_retention_days
}
