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
    resources = ["${var.common.storage.bucket_arn}/*"]
  }
  # s3blob.Store.List (ListObjectsV2). It also makes S3 answer a missing
  # key with 404 rather than 403, which Stat relies on.
  statement {
    sid       = "ListStaging"
    actions   = ["s3:ListBucket"]
    resources = [var.common.storage.bucket_arn]
  }
}

module "service" {
  source = "../service"

  name   = "fetcher"
  common = var.common
  size   = var.size

  consumer = "fetcher"

  environment = merge(var.common.environment, var.common.storage.blob_environment, {
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

  task_policy_json = data.aws_iam_policy_document.task.json
}
