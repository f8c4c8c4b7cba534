# The encoder: audio.downloaded in, audio/<song_id>.dca in the bucket and
# dca.encoded plus upload.done out. Its blob store port is encoder.Blobs:
# Open (the staged source), Put (the DCA), Delete (the staged source once
# the operation ends), Location (no request).

locals {
  # One ffmpeg per vCPU (ENCODE_CONCURRENCY): the runtime's CPU count need
  # not be the task's share.
  concurrency = max(1, floor(var.size.cpu / 1024))
}

data "aws_iam_policy_document" "task" {
  # s3blob.Store.Open (GetObject), Put (PutObject, multipart, and
  # AbortMultipartUpload), Delete (DeleteObject).
  statement {
    sid       = "EncodeAudio"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"]
    resources = ["${var.common.storage.bucket_arn}/*"]
  }
  # Without it S3 answers a missing key with 403, and a staged source that
  # is gone would read as a denied request rather than as not found.
  statement {
    sid       = "NotFoundIsNotFound"
    actions   = ["s3:ListBucket"]
    resources = [var.common.storage.bucket_arn]
  }
}

module "service" {
  source = "../service"

  name   = "encoder"
  common = var.common
  size   = var.size

  consumer = "encoder"

  environment = merge(var.common.environment, var.common.storage.blob_environment, {
    ENCODE_CONCURRENCY = tostring(local.concurrency)
  })
  secrets      = var.common.secrets
  secret_files = var.common.secret_files

  task_policy_json = data.aws_iam_policy_document.task.json
}
